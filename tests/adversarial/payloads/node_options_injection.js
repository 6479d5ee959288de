// NODE_OPTIONS from the request reaches only the program, inside its VM:
// here it requires a file that is not there, so Node refuses to start.
// request: {"env": {"NODE_OPTIONS": "--require /nonexistent/evil.js"}}
// expect: {"status": "error", "exit_code": 1, "stderr_matches": "Cannot find module '/nonexistent/evil.js'"}
console.log("started anyway");
