# A per-run disk limit: writing stops with ENOSPC at the limit, not at the
# image's free space, and a file written within it still reads back.
# request: {"disk_mb": 16, "timeout_s": 60}
# expect: {"status": "ok", "stdout_matches": "No space left on device\nwrote 1[2-6] MiB\nsmall file: ok\n$"}
dd if=/dev/zero of=/home/sandbox/fill bs=1M 2>&1 | grep -o 'No space left on device'
echo "wrote $(( $(stat -c %s /home/sandbox/fill) / 1048576 )) MiB"
rm /home/sandbox/fill
echo ok > /home/sandbox/small && echo "small file: $(cat /home/sandbox/small)"
