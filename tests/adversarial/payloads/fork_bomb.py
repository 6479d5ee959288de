# Fork bomb: every child forks again. The process limit stops it, and the run
# still ends with a result; the VM (and every process in it) goes with it.
# request: {"pids": 64, "timeout_s": 30}
# expect: {"status": "ok", "stdout_matches": "^contained after [0-9]+ forks \\(errno 11\\)\n$"}
import os, sys, time
forks = 0
try:
    while True:
        if os.fork() == 0:
            try:
                while True:
                    os.fork()
            except OSError:
                time.sleep(60)
            os._exit(0)
        forks += 1
except OSError as error:
    print(f"contained after {forks} forks (errno {error.errno})", flush=True)
