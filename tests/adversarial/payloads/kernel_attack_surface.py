# The guest kernel leaves out what user code never needs: io_uring, bpf,
# userfaultfd, keyrings, module loading, kexec; perf events are refused to
# unprivileged users, and user namespaces do not exist.
# expect: {"status": "ok", "stdout_matches": "^io_uring_setup: ENOSYS\nbpf: ENOSYS\nuserfaultfd: ENOSYS\nadd_key: ENOSYS\ninit_module: ENOSYS\nkexec_load: ENOSYS\nperf_event_open: EACCES\nunshare\\(CLONE_NEWUSER\\): (EPERM|EINVAL)\n$"}
import ctypes, errno
libc = ctypes.CDLL(None, use_errno=True)
calls = [("io_uring_setup", 425, (1, None)), ("bpf", 321, (0, None, 0)), ("userfaultfd", 323, (0,)),
         ("add_key", 248, (b"user", b"k", b"v", 1, -3)), ("init_module", 175, (None, 0, b"")),
         ("kexec_load", 246, (0, 0, None, 0))]
for name, number, args in calls:
    result = libc.syscall(number, *args)
    print(f"{name}: " + ("succeeded" if result >= 0 else errno.errorcode[ctypes.get_errno()]))
attr = (ctypes.c_uint8 * 128)()
attr[4] = 128  # size; type 0 (hardware), config 0 (cycles)
result = libc.syscall(298, attr, 0, -1, -1, 0)
print("perf_event_open: " + ("succeeded" if result >= 0 else errno.errorcode[ctypes.get_errno()]))
result = libc.unshare(0x10000000)  # CLONE_NEWUSER
print("unshare(CLONE_NEWUSER): " + ("succeeded" if result == 0 else errno.errorcode[ctypes.get_errno()]))
