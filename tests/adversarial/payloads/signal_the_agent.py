# User code signalling the agent (PID 1): refused.
# expect: {"status": "ok", "stdout": "SIGKILL: denied\nSIGSTOP: denied\nSIGTERM: denied\n"}
import os, signal
for sig in (signal.SIGKILL, signal.SIGSTOP, signal.SIGTERM):
    try:
        os.kill(1, sig)
        print(f"{sig.name}: delivered")
    except PermissionError:
        print(f"{sig.name}: denied")
