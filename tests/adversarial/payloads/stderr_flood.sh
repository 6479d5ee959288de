# Output flood on stderr.
# request: {"stderr_limit": 10000}
# expect: {"status": "output_limit", "stderr_length": 10000, "stderr_truncated": true}
yes 'flooding stderr' >&2
