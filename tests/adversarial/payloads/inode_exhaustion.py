# Inode exhaustion: create empty files until the filesystem has no inodes.
# request: {"timeout_s": 180}
# expect: {"status": "ok", "stdout_matches": "^out of inodes after [0-9]+ files \\(errno 28\\)\n$"}
import os
os.makedirs("/home/sandbox/many", exist_ok=True)
count = 0
try:
    while True:
        os.close(os.open(f"/home/sandbox/many/{count}", os.O_CREAT | os.O_WRONLY))
        count += 1
except OSError as error:
    print(f"out of inodes after {count} files (errno {error.errno})")
