# An infinite loop is stopped at the time limit.
# request: {"timeout_s": 2}
# expect: {"status": "timeout"}
while True:
    pass
