# Sleeping past the time limit.
# request: {"timeout_s": 2}
# expect: {"status": "timeout"}
sleep 600
