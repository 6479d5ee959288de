# The host's files and environment are not in the guest: the test's marker
# file on the host and the variable it set in the daemon's environment are
# nowhere to be seen.
# expect: {"status": "ok", "stdout": "no host marker file\nno host variable\n"}
ls /tmp/airlock-adversarial-host-marker >/dev/null 2>&1 && echo "host marker file visible" || echo "no host marker file"
(env; cat /proc/*/environ 2>/dev/null) | grep -q AIRLOCK_ADVERSARIAL_SECRET && echo "host variable visible" || echo "no host variable"
