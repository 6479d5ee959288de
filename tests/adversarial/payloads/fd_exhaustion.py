# File descriptor exhaustion: open files until the limit, which the program
# cannot raise (the hard limit is set too).
# request: {"open_files": 64}
# expect: {"status": "ok", "stdout_matches": "^EMFILE after [0-9]+ files; raising the limit: ValueError\n$"}
import resource
files = []
try:
    while True:
        files.append(open("/dev/null"))
except OSError as error:
    assert error.errno == 24
    print(f"EMFILE after {len(files)} files; raising the limit: ", end="")
try:
    resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
    print("raised!")
except ValueError:
    print("ValueError")
