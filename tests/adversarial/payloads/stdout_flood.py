# Output flood on stdout: far more than the limit. The run is stopped at the
# limit, exactly that many bytes are kept and the result says so.
# request: {"stdout_limit": 65536}
# expect: {"status": "output_limit", "stdout_length": 65536, "stdout_truncated": true}
import sys
block = "x" * 65535 + "\n"
while True:
    sys.stdout.write(block)
