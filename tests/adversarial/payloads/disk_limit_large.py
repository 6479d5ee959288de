# A disk limit above what the image has free: the guest's filesystem grows
# into its disk's spare room for this run, up to the limit and not past it;
# inodes grow with it.
# request: {"disk_mb": 1024}
# expect: {"status": "ok", "stdout": "1000 MiB: ok\n+100 MiB: No space left on device\nafter removing: ok\nmany inodes: True\n"}
import os
def reserve(name, mib):
    fd = os.open(name, os.O_CREAT | os.O_WRONLY, 0o644)
    try:
        os.posix_fallocate(fd, 0, mib << 20)
        return "ok"
    except OSError as error:
        return os.strerror(error.errno)
    finally:
        os.close(fd)
print("1000 MiB:", reserve("/home/sandbox/big", 1000))
print("+100 MiB:", reserve("/home/sandbox/more", 100))
os.unlink("/home/sandbox/big")
os.unlink("/home/sandbox/more")
print("after removing:", reserve("/home/sandbox/again", 100))
print("many inodes:", os.statvfs("/").f_favail > 100_000)
