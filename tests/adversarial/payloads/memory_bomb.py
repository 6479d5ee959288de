# Memory bomb: touch memory until there is none. The guest's OOM killer ends
# the program; the host and its other VMs are untouched.
# request: {"timeout_s": 60}
# expect: {"status": "oom", "signal": 9}
chunks = []
while True:
    chunks.append(bytearray(8 << 20))
