#include "engine/languages.h"

#include <array>
#include <utility>

#include "common/error.h"

namespace airlock::engine {

namespace {

// The prestarted Python: imports what programs commonly need, says ready,
// and blocks until the agent sends a program; then it becomes that program:
// a fresh __main__, the run's argv, environment and directory, a reseeded
// `random` (the clone's kernel RNG was reseeded before this line runs), and
// tracebacks that start at the user's code, as `python3 main.py` prints them.
constexpr const char* kPythonPrestart = R"PY(
import os, sys
import json, re, math, random, collections, itertools, functools, datetime, pathlib
import subprocess, io, base64, hashlib, string, time, types, builtins, traceback
_control = os.fdopen(3, "r+b", buffering=0)
_control.write(b"ready\n")
_line = b""
while not _line.endswith(b"\n"):
    _chunk = _control.read(65536)
    if not _chunk:
        os._exit(70)
    _line += _chunk
_control.close()
_job = json.loads(_line)
os.environ.clear()
os.environ.update(entry.split("=", 1) for entry in _job["env"])
os.chdir(_job["cwd"])
random.seed()
sys.argv = _job["argv"]
_path = _job["path"]
sys.path[0] = os.path.dirname(_path)
_main = types.ModuleType("__main__")
_main.__file__ = _path
_main.__builtins__ = builtins
sys.modules["__main__"] = _main
with open(_path, "rb") as _source_file:
    _source = _source_file.read()
try:
    _code = compile(_source, _path, "exec")
except SyntaxError as _error:
    traceback.print_exception(type(_error), _error, None)
    sys.exit(1)
del _job, _line, _source, _source_file, _control
try:
    exec(_code, _main.__dict__)
except SystemExit:
    raise
except BaseException as _error:
    _error.__traceback__ = _error.__traceback__.tb_next
    sys.excepthook(type(_error), _error, _error.__traceback__)
    sys.exit(1)
)PY";

// The Node started in a pooled guest after restore: says ready on its
// control socket, then becomes the program: the run's environment, directory
// and argv, and Node's own main-module loader, as `node main.js` does.
constexpr const char* kNodePrestart = R"JS(
const control = new (require('net').Socket)({ fd: 3, readable: true, writable: true });
let buffer = '';
control.setEncoding('utf8');
control.write('ready\n');
control.on('data', (chunk) => {
  buffer += chunk;
  const newline = buffer.indexOf('\n');
  if (newline < 0) return;
  control.removeAllListeners('data');
  control.destroy();
  const job = JSON.parse(buffer.slice(0, newline));
  for (const key of Object.keys(process.env)) delete process.env[key];
  for (const entry of job.env) {
    const eq = entry.indexOf('=');
    process.env[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  process.chdir(job.cwd);
  process.argv = [process.argv[0], ...job.argv];
  process.execArgv = [];
  require('module').runMain();
});
)JS";

const std::array<Language, 3>& languages() {
  static const std::array<Language, 3> table = {{
      {"python",
       "/home/sandbox/main.py",
       {"/usr/bin/python3", "/home/sandbox/main.py"},
       // Unbuffered, so output streams as it is printed rather than at exit.
       {"PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1"},
       {"/usr/bin/python3", "-c",
        "import json, re, os, sys, math, random, collections, itertools, functools, datetime, "
        "pathlib, subprocess, io, base64, hashlib, string, time"},
       {"/usr/bin/python3", "-c", kPythonPrestart},
       {},
       {"PYTHON", "LANG", "LC_"}},
      {"javascript",
       "/home/sandbox/main.js",
       {"/usr/bin/node", "/home/sandbox/main.js"},
       {},
       {"/usr/bin/node", "-e", "require('fs'); require('path'); require('util')"},
       {},
       {"/usr/bin/node", "-e", kNodePrestart},
       {"NODE_", "UV_", "LANG", "LC_"}},
      {"shell",
       "/home/sandbox/main.sh",
       {"/bin/bash", "/home/sandbox/main.sh"},
       {},
       {"/bin/bash", "-c", "cat /dev/null; ls / >/dev/null"},
       {},
       {},
       {}},
  }};
  return table;
}

const std::pair<const char*, const char*> kAliases[] = {
    {"py", "python"},         {"python3", "python"}, {"js", "javascript"}, {"node", "javascript"},
    {"nodejs", "javascript"}, {"sh", "shell"},       {"bash", "shell"},
};

}  // namespace

std::string supported_languages() {
  std::string names;
  for (const auto& language : languages()) names += (names.empty() ? "" : ", ") + language.name;
  return names;
}

const Language& find_language(const std::string& name) {
  std::string canonical = name;
  for (const auto& [alias, target] : kAliases) {
    if (name == alias) canonical = target;
  }
  for (const auto& language : languages()) {
    if (language.name == canonical) return language;
  }
  throw Error(ErrorCode::invalid_argument,
              "unknown language '" + name + "' (supported: " + supported_languages() + ")");
}

}  // namespace airlock::engine
