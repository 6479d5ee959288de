# /proc shows user code nothing of the agent: not its directory, its
# command line, its environment or its open files.
# expect: {"status": "ok", "stdout": "no /proc/1\nno environ\nno fds\n"}
test -e /proc/1 && echo "/proc/1 visible" || echo "no /proc/1"
cat /proc/1/environ >/dev/null 2>&1 && echo "environ readable" || echo "no environ"
ls /proc/1/fd >/dev/null 2>&1 && echo "fds listed" || echo "no fds"
