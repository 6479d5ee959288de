# User code attaching to the agent with ptrace: refused.
# expect: {"status": "ok", "stdout": "PTRACE_ATTACH: errno 1\nPTRACE_SEIZE: errno 1\n"}
import ctypes, ctypes.util
libc = ctypes.CDLL(None, use_errno=True)
for name, request in (("PTRACE_ATTACH", 16), ("PTRACE_SEIZE", 0x4206)):
    result = libc.ptrace(request, 1, None, None)
    print(f"{name}: " + ("attached" if result == 0 else f"errno {ctypes.get_errno()}"))
