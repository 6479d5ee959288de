# Binary output with NUL bytes: delivered byte-exact (base64 in JSON).
# expect: {"status": "ok", "stdout_base64_of_range": 4}
import sys
sys.stdout.buffer.write(bytes(range(256)) * 4)
