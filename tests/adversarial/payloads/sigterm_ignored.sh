# A process tree that ignores SIGTERM, in its own session, still dies at the
# time limit: the agent kills every process of the run with SIGKILL.
# request: {"timeout_s": 2}
# expect: {"status": "timeout"}
trap '' TERM
setsid sh -c "trap '' TERM; sleep 600" &
nohup sleep 600 &
while true; do sleep 1; done
