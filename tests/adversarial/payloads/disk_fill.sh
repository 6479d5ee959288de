# Disk fill: write until the guest's filesystem is full. The program sees
# ENOSPC; the VM and the host are fine, and the next line still runs.
# request: {"timeout_s": 120}
# expect: {"status": "ok", "stdout_matches": "No space left on device[\\s\\S]*still here\n$"}
dd if=/dev/zero of=/home/sandbox/fill bs=1M 2>&1 | grep -o 'No space left on device'
echo still here
