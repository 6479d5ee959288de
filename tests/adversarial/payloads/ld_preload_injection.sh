# LD_PRELOAD from the request reaches only the program, inside its VM: a
# library it cannot load is ignored with the loader's warning.
# request: {"env": {"LD_PRELOAD": "/home/sandbox/evil.so"}}
# expect: {"status": "ok", "stdout": "ran\n", "stderr_matches": "evil.so.*cannot be preloaded"}
echo ran
