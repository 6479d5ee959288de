# Zombie storm: hundreds of children exit and are never waited for.
# request: {"pids": 1024}
# expect: {"status": "ok", "stdout": "left 500 zombies\n"}
import os
for _ in range(500):
    if os.fork() == 0:
        os._exit(0)
print("left 500 zombies")
