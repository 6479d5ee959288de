#include "engine/languages.h"

#include <array>
#include <utility>

#include "common/error.h"

namespace airlock::engine {

namespace {

// The prestarted Python: imports what programs commonly need, says ready and
// waits for jobs on its control socket. A warm-up job ({"warm": true}: our
// own program, never the user's) runs exactly the path a program takes (read
// the file, compile, run in a fresh __main__, print) and then the interpreter
// waits again: a pool warms each guest this way, so the emulator has
// translated that path and the pages it writes are already this process's
// own when the request comes (it also winds down as a program's end does,
// short of exiting, so that path is warm too). The first other job is the program: the
// interpreter becomes it, with a fresh __main__, the run's argv, environment
// and directory, a reseeded `random` (the clone's kernel RNG was reseeded
// first), and tracebacks that start at the user's code, as `python3 main.py`
// prints them.
//
// What `python3 main.py` reports is reproduced exactly: the exit status of
// SystemExit (a number outside C's long is 255, as CPython's conversion
// fails), an uncaught KeyboardInterrupt ending the process by SIGINT after
// the wind-down, and a SyntaxError printed by sys.excepthook with no frame.
// Code with a NUL byte gets the file parser's SyntaxError (compile() would
// raise a ValueError). Code that compile() refuses otherwise is handed to a
// real `python3 main.py` by exec: no wrapper frame can show, and the rare
// case pays one start.
//
// A process forked from the program (os.fork, multiprocessing's fork)
// inherits all of this; only the interpreter itself (_PID) reports the exit,
// so a child's exit ends only the child, as it does under `python3 main.py`.
//
// At the end it does what interpreter exit does that a program can see
// (waits for non-daemon threads, runs atexit handlers, finalises what
// __main__ held so files get flushed, flushes stdio) and then _exit()s: a
// full finalisation tears down every module object by object, tens of
// milliseconds under emulation, for nothing, since the VM is destroyed
// after the run.
constexpr const char* kPythonPrestart = R"PY(
import os, sys, gc, atexit, threading
import json, re, math, random, collections, itertools, functools, datetime, pathlib
import subprocess, io, base64, hashlib, string, time, types, builtins, signal, traceback

_INTERRUPTED = object()  # _run's result for an uncaught KeyboardInterrupt

def _preload():
    # An image may name modules that its programs import first and that take
    # long to import (python-data: numpy, pandas, matplotlib): imported here,
    # in the template, a run's `import pandas` finds them loaded.
    try:
        with open("/usr/lib/airlock/python-preload") as listing:
            names = [line.split("#")[0].strip() for line in listing]
    except OSError:
        return
    for name in filter(None, names):
        try:
            __import__(name)
        except Exception as error:
            print("airlock: preloading %s failed: %r" % (name, error), file=sys.stderr)

_preload()

def _exit_status(request):
    code = request.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF if -(1 << 63) <= code < (1 << 63) else 255
    try:
        print(code, file=sys.stderr)
    except BaseException:
        pass
    return 1

def _wind_down(warming):
    # Non-daemon threads finish, as at interpreter exit (threading._shutdown
    # itself would mark the main thread stopped, so the warm-up cannot use it).
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            try:
                thread.join()
            except BaseException:
                pass
    # A warm-up must not run (and so drop) handlers that imports registered.
    if not warming or atexit._ncallbacks() == 0:
        atexit._run_exitfuncs()
    # Objects __main__ holds are finalised newest first, so a finaliser still
    # finds the modules imported before it. (Cycles are left: CPython does
    # not promise __del__ for objects alive at exit, and a full collection
    # costs ~10 ms here.)
    try:
        namespace = sys.modules["__main__"].__dict__
        for name in reversed(list(namespace)):
            if name != "__builtins__":
                namespace.pop(name, None)
        del namespace
    except BaseException:
        pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass

def _finish(status):
    _wind_down(False)
    if status is _INTERRUPTED:
        # As CPython's main does: the process ends by the signal itself.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
        os._exit(130)
    # The result is known: the agent hears it now, with stdio closed, rather
    # than after the process's own teardown (tens of milliseconds of freeing
    # pages under emulation). Only from the interpreter itself, not a forked
    # child, and only if fd 3 is still our control socket.
    try:
        os.closerange(0, 3)
        if os.getpid() == _PID and _is_control(3):
            os.write(3, b"exit %d\n" % status)
    except BaseException:
        pass
    os._exit(status)

def _is_control(fd):
    info = os.fstat(fd)
    return (info.st_dev, info.st_ino) == _CONTROL_ID

def _run(job):
    os.environ.clear()
    os.environ.update(entry.split("=", 1) for entry in job["env"])
    os.chdir(job["cwd"])
    random.seed()
    # A generator seeded when the template imported it would repeat in every
    # clone: numpy's global one (a preloaded image's) draws a fresh seed too.
    numpy_random = sys.modules.get("numpy.random")
    if numpy_random is not None:
        numpy_random.seed()
    sys.argv = job["argv"]
    path = job["path"]
    sys.path[0] = os.path.dirname(path)
    main = types.ModuleType("__main__")
    main.__file__ = path
    main.__builtins__ = builtins
    sys.modules["__main__"] = main
    with open(path, "rb") as source_file:
        source = source_file.read()
    try:
        if b"\0" in source:
            # What CPython's file parser says from 3.11.4 on (this guest's
            # 3.11.2 silently stops reading at the NUL; compile() raises a
            # ValueError).
            head = source[: source.index(b"\0")]
            line = head[head.rfind(b"\n") + 1 :].decode("utf-8", "replace")
            raise SyntaxError("source code cannot contain null bytes", (path, head.count(b"\n") + 1, None, line))
        code = compile(source, path, "exec")
    except SyntaxError as error:
        error.__traceback__ = None  # the parser's error has no frame of the program
        sys.excepthook(type(error), error, None)
        return 1
    except BaseException:
        os.execv(sys.executable, [sys.executable] + sys.argv)
    del job, source, source_file
    try:
        exec(code, main.__dict__)
    except SystemExit as request:
        return _exit_status(request)
    except BaseException as error:
        error.__traceback__ = error.__traceback__.tb_next
        sys.excepthook(type(error), error, error.__traceback__)
        return _INTERRUPTED if isinstance(error, KeyboardInterrupt) else 1
    return 0

def _next_job(control):
    line = b""
    while not line.endswith(b"\n"):
        chunk = control.read(65536)
        if not chunk:
            os._exit(70)
        line += chunk
    return json.loads(line)

# What exists now is never collected: a program's collections then leave
# these objects, and the pages holding them, alone.
gc.freeze()
_PID = os.getpid()
_control = os.fdopen(3, "r+b", buffering=0)
os.set_inheritable(3, False)
_CONTROL_ID = (os.fstat(3).st_dev, os.fstat(3).st_ino)
_control.write(b"ready\n")
while True:
    _job = _next_job(_control)
    if not _job.get("warm"):
        break
    _status = _run(_job)
    _wind_down(True)
    _control.write(b"warmed %d\n" % _status)
_finish(_run(_job))
)PY";

// The prestarted Python's warm-up job, run in the template and in every
// pooled clone before it is handed out: each clone's emulator translates
// afresh, so what this takes is not translated on a request's time. Beside
// printing, it takes what programs (and @sandboxed calls, docs/sdk.md) do
// most: JSON both ways at some size, base64, bytecode loaded with marshal,
// a module imported through a meta path finder, an exception formatted. It
// leaves nothing a program could see: the finder and the module are gone,
// and __main__ is replaced for the program.
constexpr const char* kPythonWarmup = R"PY(
import sys, json, marshal, binascii, traceback
from _frozen_importlib import ModuleSpec
text = json.dumps({"k%d" % i: ["v" * 40, i, 1.5, None, True, {"n": [i]}] for i in range(40)})
assert json.loads(text)["k7"][1] == 7
assert binascii.a2b_base64(binascii.b2a_base64(text.encode())) == text.encode()
code = marshal.dumps(compile("def twice(x):\n    return x * 2\n", "<airlock warm-up>", "exec"))

class _Finder:
    def find_spec(self, name, path=None, target=None):
        return ModuleSpec(name, self) if name == "_airlock_warm_module" else None
    def create_module(self, spec):
        return None
    def exec_module(self, module):
        exec(marshal.loads(code), module.__dict__)

finder = _Finder()
sys.meta_path.insert(0, finder)
try:
    __import__("_airlock_warm_module")
    assert sys.modules["_airlock_warm_module"].twice(21) == 42
finally:
    sys.meta_path.remove(finder)
    sys.modules.pop("_airlock_warm_module", None)
try:
    raise ValueError("warm")
except ValueError as error:
    assert "ValueError: warm" in "".join(traceback.format_exception(type(error), error, error.__traceback__))
print(sum(range(100)))
print("warm", file=sys.stderr)
)PY";

// The Node started in a pooled guest after restore: says ready on its
// control socket; a warm-up job ({"warm": true}: our program, never the
// user's) is loaded through the module loader a program's file goes
// through (resolve, read, wrap, compile, run), dropped from the module
// cache, and answered with `warmed N`, so V8 has compiled and the emulator
// translated that path before the request; the first other job makes it the
// program: the run's environment, directory and argv, and Node's own
// main-module loader, as `node main.js` does. (Its fd 3 stays open for the
// exit notice, as the prestarted Python's does.)
constexpr const char* kNodePrestart = R"JS(
const control = new (require('net').Socket)({ fd: 3, readable: true, writable: true });
let buffer = '';
const warm = (job) => {
  let status = 0;
  try {
    require(job.path);
  } catch (error) {
    status = 1;
    console.error(error);
  } finally {
    const loaded = require.cache[job.path];
    delete require.cache[job.path];
    // (Node 18's [eval] module has no children list; later ones do.)
    const children = Array.isArray(module.children) ? module.children : [];
    if (children.indexOf(loaded) >= 0) children.splice(children.indexOf(loaded), 1);
  }
  control.write(`warmed ${status}\n`);
};
// Once the program is done, the agent hears its status before Node's own
// teardown (80-100 ms of freeing under emulation, measured): after every
// 'exit' listener (ours wraps emit, so it runs last, and it is not one of
// process's own keys), stdio is closed and `exit N` written on fd 3, as
// the prestarted Python does. Where Node emits no 'exit' (a signal), or
// emits it before it prints an uncaught exception (Node 18), the kernel's
// status is the result, as before.
const notifyAtExit = () => {
  const fs = require('fs');
  const fd = control._handle.fd;
  const emit = process.emit;
  let crashing = false;
  process.on('uncaughtExceptionMonitor', () => {
    crashing = true;
  });
  Object.defineProperty(process, 'emit', {
    configurable: true,
    writable: true,
    enumerable: false,
    value: function (event, ...args) {
      const result = emit.call(this, event, ...args);
      if (event === 'exit' && Number.isInteger(args[0]) && !crashing) {
        try {
          for (const stdio of [0, 1, 2]) fs.closeSync(stdio);
          fs.writeSync(fd, `exit ${args[0] & 0xff}\n`);
        } catch (error) {}
      }
      return result;
    },
  });
};
const become = (job) => {
  for (const key of Object.keys(process.env)) delete process.env[key];
  for (const entry of job.env) {
    const eq = entry.indexOf('=');
    process.env[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  process.chdir(job.cwd);
  process.argv = [process.argv[0], ...job.argv];
  process.execArgv = [];
  require('module').runMain();
};
const take = (chunk) => {
  buffer += chunk;
  for (let newline = buffer.indexOf('\n'); newline >= 0; newline = buffer.indexOf('\n')) {
    const job = JSON.parse(buffer.slice(0, newline));
    buffer = buffer.slice(newline + 1);
    if (job.warm) {
      warm(job);
      continue;
    }
    control.removeListener('data', take);
    control.pause();
    control.unref();  // the event loop is the program's alone
    notifyAtExit();
    become(job);
    return;
  }
};
control.setEncoding('utf8');
control.on('data', take);
control.write('ready\n');
)JS";

// The pooled Node's warm-up job: what programs do most in their first
// milliseconds, all of it synchronous (nothing of it may print after
// `warmed`): console.log, JSON both ways, the common built-in modules,
// strings, arrays, a closure, a class, a Buffer, an error's stack.
constexpr const char* kNodeWarmup = R"JS(
const fs = require('fs');
const path = require('path');
const util = require('util');
const data = {};
for (let i = 0; i < 40; i++) data['k' + i] = ['v'.repeat(40), i, 1.5, null, true, { n: [i] }];
const text = JSON.stringify(data);
if (JSON.parse(text).k7[1] !== 7) throw new Error('json');
class Counter { constructor() { this.n = 0; } add(x) { this.n += x; return this; } }
const counter = [1, 2, 3].map((x) => x * 2).filter((x) => x > 2).reduce((c, x) => c.add(x), new Counter());
if (Buffer.from(text).toString('base64').length === 0 || counter.n !== 10) throw new Error('values');
if (!path.join('/home', 'sandbox').startsWith('/') || !fs.existsSync('/home/sandbox')) throw new Error('fs');
try { null.x; } catch (error) { if (!String(error.stack).includes('TypeError')) throw error; }
console.log(util.format('%s %d', 'warm', 1), `${counter.n}`);
console.error('warm');
)JS";

// The prestarted bash: `bash /home/sandbox/main.sh` with this file (written
// at main.sh before it starts) as its BASH_ENV, which bash reads and runs
// before it opens its script. It says ready and waits for a job on its
// control socket; a warm-up job sources our warm-up program (main.sh by
// then) and waits again. On the first other job it makes itself what
// `bash main.sh` would have been if started for the run: the run's
// environment (every exported variable replaced), directory, arguments and
// what bash derives at start (PWD, OLDPWD, SHLVL, HOSTNAME, $_, a reseeded
// RANDOM, SECONDS from 0), then returns, and bash opens main.sh, by now the
// run's code, as its script: its line numbers, $0, BASH_SOURCE and error
// messages are a script's. A builtin-only script forks nothing.
//
// What bash takes from its environment only when it starts (BASH_* such as
// BASH_ENV or exported functions, SHELLOPTS, POSIXLY_CORRECT, IFS, bash's
// own read-only and dynamic variables, PWD), names bash cannot hold, and a
// SHLVL it would warn about, get a real start instead: an exec of bash with
// exactly the run's environment, which costs a start. (The host already
// gives a run that sets BASH*, SHELLOPTS, POSIXLY_CORRECT or a locale a
// bash of its own: startup_env_prefixes.)
//
// Only builtins run here (PATH is the run's from the export on), and
// nothing is left behind: its functions and variables are unset, fd 3 is
// closed, and its last command sets $_ as bash's start does. (`exec 3>&-`
// is written bare: after `builtin`, a redirection lasts only for that
// command.)
constexpr const char* kShellPrestart = R"SH(
__airlock_take() {
  builtin local __airlock_size
  builtin read -r -u 3 __airlock_size || builtin exit 70
  IFS= builtin read -r -u 3 -N "$__airlock_size" __airlock_text || builtin exit 70
  builtin eval "$__airlock_text"
}
__airlock_real_start() {
  exec 3>&-
  builtin exec /usr/bin/env -i -- "${__airlock_env[@]}" /bin/bash /home/sandbox/main.sh "${__airlock_args[@]}"
}
__airlock_become() {
  builtin local __airlock_entry __airlock_name
  builtin cd -P -- "$__airlock_cwd" 2>/dev/null || builtin cd -P /
  for __airlock_entry in "${__airlock_env[@]}"; do
    __airlock_name=${__airlock_entry%%=*}
    case $__airlock_name in
      '' | [0-9]* | *[!A-Za-z0-9_]* | __airlock_* | _ | BASH* | SHELLOPTS | POSIXLY_CORRECT | IFS | \
      UID | EUID | PPID | GROUPS | RANDOM | SRANDOM | SECONDS | EPOCH* | LINENO | HISTCMD | DIRSTACK | \
      FUNCNAME | PIPESTATUS | COMP_* | PWD) __airlock_real_start ;;
      SHLVL) case ${__airlock_entry#*=} in '' | *[!0-9]* | ???*) __airlock_real_start ;; esac ;;
    esac
  done
  builtin unset -v "${__airlock_exported[@]}"
  builtin unset -v OLDPWD HOSTNAME
  builtin export PWD
  for __airlock_entry in "${__airlock_env[@]}"; do builtin export -- "$__airlock_entry"; done
  if [[ -z ${OLDPWD+set} || ! -d $OLDPWD ]]; then
    builtin unset -v OLDPWD
    builtin declare -gx OLDPWD
  fi
  [[ -n ${HOSTNAME+set} ]] || HOSTNAME=$__airlock_hostname
  builtin export SHLVL=$((10#${SHLVL:-0} + 1))
  RANDOM=$SRANDOM
  SECONDS=0
  exec 3>&-
}
# What is exported now is what a job replaces, found once here (a few ms
# under emulation) rather than on a run's time.
__airlock_exported=(BASH_ENV)
for __airlock_name in ${!A*} ${!B*} ${!C*} ${!D*} ${!E*} ${!F*} ${!G*} ${!H*} ${!I*} ${!J*} ${!K*} \
  ${!L*} ${!M*} ${!N*} ${!O*} ${!P*} ${!Q*} ${!R*} ${!S*} ${!T*} ${!U*} ${!V*} ${!W*} ${!X*} ${!Y*} \
  ${!Z*} ${!a*} ${!b*} ${!c*} ${!d*} ${!e*} ${!f*} ${!g*} ${!h*} ${!i*} ${!j*} ${!k*} ${!l*} ${!m*} \
  ${!n*} ${!o*} ${!p*} ${!q*} ${!r*} ${!s*} ${!t*} ${!u*} ${!v*} ${!w*} ${!x*} ${!y*} ${!z*} ${!_*}; do
  # (Looking at bash's dynamic variables would give them values that
  # `declare -p` then shows; none of them is exported.)
  case $__airlock_name in
    __airlock_* | PWD | BASH* | COMP_WORDBREAKS | DIRSTACK | EPOCH* | FUNCNAME | GROUPS | HISTCMD | \
    LINENO | RANDOM | SECONDS | SRANDOM | PIPESTATUS) ;;
    *) [[ ${!__airlock_name@a} != *x* ]] || __airlock_exported+=("$__airlock_name") ;;
  esac
done
builtin unset -v __airlock_name
builtin printf 'ready\n' >&3
__airlock_take
while [[ -n ${__airlock_warm-} ]]; do
  builtin unset -v __airlock_warm
  # The path a run takes through us, in a subshell that then ends.
  ( __airlock_become ) >/dev/null 2>&1
  builtin source /home/sandbox/main.sh
  builtin printf 'warmed %d\n' "$?" >&3
  __airlock_take
done
__airlock_become
builtin set -- "${__airlock_args[@]}"
builtin unset -v __airlock_text __airlock_env __airlock_args __airlock_cwd __airlock_hostname __airlock_exported
builtin unset -f __airlock_take __airlock_real_start __airlock_become
builtin : /bin/bash
)SH";

// The prestarted bash's warm-up job: what scripts do most without a fork
// (loops, tests, arithmetic, expansions, printf and echo, a here-string,
// a redirection), sourced as the run's script will be read. It leaves no
// variable behind.
constexpr const char* kShellWarmup = R"SH(
__airlock_w=""
for ((__airlock_i = 0; __airlock_i < 20; __airlock_i++)); do __airlock_w+="$__airlock_i:"; done
case $__airlock_w in 0:*:19:) ;; *) builtin return 1 ;; esac
[[ -n $HOME && ${#__airlock_w} -gt 20 && ${__airlock_w//:/} == 0* ]] || builtin return 1
builtin read -r __airlock_line <<<"warm line" && [[ $__airlock_line == "warm line" ]] || builtin return 1
builtin printf '%s %d\n' "${__airlock_w:0:6}" "$(( ${#__airlock_w} * 2 ))"
builtin echo hi
builtin echo warm >&2
builtin echo discarded >/dev/null
builtin unset -v __airlock_w __airlock_i __airlock_line
)SH";

const std::array<Language, 4>& languages() {
  static const std::array<Language, 4> table = {{
      {"python",
       "/home/sandbox/main.py",
       {"/usr/bin/python3", "/home/sandbox/main.py"},
       // Unbuffered, so output streams as it is printed rather than at exit.
       {"PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1"},
       {"/usr/bin/python3", "-c",
        "import json, re, os, sys, math, random, collections, itertools, functools, datetime, "
        "pathlib, subprocess, io, base64, hashlib, string, time"},
       {"/usr/bin/python3", "-c", kPythonPrestart},
       kPythonWarmup,
       {},
       // MPL*: matplotlib reads its settings when it is imported (a preload).
       {"PYTHON", "LANG", "LC_", "TZ", "LD_", "GLIBC_TUNABLES", "MALLOC_", "MPL", "OPENBLAS_", "OMP_"}},
      {"javascript",
       "/home/sandbox/main.js",
       {"/usr/bin/node", "/home/sandbox/main.js"},
       // The image's reseed hook (docs/snapshots.md: copies of a sandbox).
       {"NODE_OPTIONS=--require /usr/lib/airlock/reseed.js"},
       {"/usr/bin/node", "-e", "require('fs'); require('path'); require('util')"},
       {},
       kNodeWarmup,
       {"/usr/bin/node", "-e", kNodePrestart},
       {"NODE_", "UV_", "LANG", "LC_", "TZ", "LD_", "GLIBC_TUNABLES", "MALLOC_"}},
      {"shell",
       "/home/sandbox/main.sh",
       {"/bin/bash", "/home/sandbox/main.sh"},
       {},
       {"/bin/bash", "-c", "cat /dev/null; ls / >/dev/null"},
       {"/bin/bash", "/home/sandbox/main.sh"},
       kShellWarmup,
       {},
       {"BASH", "SHELLOPTS", "POSIXLY_CORRECT", "LANG", "LC_", "TZ", "LD_", "GLIBC_TUNABLES", "MALLOC_"},
       kShellPrestart,
       {"BASH_ENV=/home/sandbox/main.sh"},
       "shell"},
      // Compiled per run by the go image's go-run (build, then exec: the
      // program's own exit status); the template's warm-up fills the build
      // cache (images/README.md). No interpreter to prestart.
      {"go",
       "/home/sandbox/main.go",
       {"/usr/lib/airlock/go-run", "/home/sandbox/main.go"},
       {},
       {"/usr/bin/go", "build", "-o", "/dev/null", "/usr/lib/airlock/warm.go"},
       {},
       {},
       {},
       {"LD_", "GLIBC_TUNABLES", "MALLOC_"}},
  }};
  return table;
}

const std::pair<const char*, const char*> kAliases[] = {
    {"py", "python"},         {"python3", "python"}, {"js", "javascript"}, {"node", "javascript"},
    {"nodejs", "javascript"}, {"sh", "shell"},       {"bash", "shell"},    {"golang", "go"},
};

}  // namespace

std::string supported_languages() {
  std::string names;
  for (const auto& language : languages()) names += (names.empty() ? "" : ", ") + language.name;
  return names;
}

std::vector<std::pair<std::string, std::string>> language_programs() {
  std::vector<std::pair<std::string, std::string>> programs;
  for (const auto& language : languages()) programs.emplace_back(language.name, language.command.front());
  return programs;
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
