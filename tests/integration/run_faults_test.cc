// Faults of ordinary runs a new user meets first (issue 10): empty stdin,
// a program that forks, what a Python traceback shows. Real VMs through the
// real CLI (and airlockd), as cli_test.cc does.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>

#include "common/child_process.h"
#include "common/io.h"
#include "support/airlock_cli.h"
#include "support/cli_fixture.h"
#include "support/test_daemon.h"

extern char** environ;

namespace airlock::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Programs that end once their stdin does, with what each prints then.
struct StdinReader {
  const char* language;
  const char* code;
  const char* out;
};
const StdinReader kStdinReaders[] = {
    {"shell", "wc -l", "0\n"},
    {"python", "import sys; print(repr(sys.stdin.read()))", "''\n"},
    {"python", "try:\n    input()\nexcept EOFError:\n    print('EOF')", "EOF\n"},
    {"javascript", "process.stdin.on('data', () => {}); process.stdin.on('end', () => console.log('end'))",
     "end\n"},
};

// Runs the CLI with stdin a pipe whose writer closed before anything was
// written (run_cli gives /dev/null for no input).
CliResult run_cli_with_closed_pipe(const std::vector<std::string>& args, const std::string& extra_env) {
  auto [in_read, in_write] = make_pipe();
  in_write.reset();
  fs::path out = fs::temp_directory_path() / ("airlock-it-out-" + std::to_string(::getpid()));
  UniqueFd out_fd(::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  std::vector<std::string> argv = {AIRLOCK_BIN};
  argv.insert(argv.end(), args.begin(), args.end());
  SpawnOptions spawn;
  spawn.fds = {{0, in_read.get()}, {1, out_fd.get()}};
  for (char** entry = environ; *entry; ++entry) spawn.env.emplace_back(*entry);
  spawn.env.push_back(extra_env);
  ChildProcess child = ChildProcess::spawn(argv, spawn);
  auto status = child.wait();
  CliResult result;
  result.exit_code = status.exit_code.value_or(128 + status.signal.value_or(0));
  result.out = read_file(out, 1 << 20);
  fs::remove(out);
  return result;
}

TEST_F(Cli, EmptyStdinEndsTheProgramsInput) {
  // Before the fix each of these waited for the time limit (exit 124).
  for (const auto& reader : kStdinReaders) {
    auto result = airlock({"run", "--no-daemon", "--timeout", "20", "--lang", reader.language, reader.code});
    EXPECT_EQ(result.exit_code, 0) << reader.code << ": " << result.err;
    EXPECT_EQ(result.out, reader.out) << reader.code;
  }
  auto piped = run_cli_with_closed_pipe({"run", "--no-daemon", "--timeout", "20", "--lang", "shell", "wc -l"},
                                        "AIRLOCK_RUNTIME_DIR=" + runtime_dir_.string());
  EXPECT_EQ(piped.exit_code, 0);
  EXPECT_EQ(piped.out, "0\n");
}

class DaemonRuns : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("airlock-f-" + std::to_string(::getpid()) + "-" +
            std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()).substr(0, 24));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    daemon_.emplace(dir_);
  }
  void TearDown() override {
    auto status = daemon_->stop();
    if (status) {
      EXPECT_EQ(status->exit_code, 0) << "airlockd did not exit cleanly";
    }
    EXPECT_TRUE(qemu_processes(dir_.string() + "/").empty()) << "QEMU left running";
    fs::remove_all(dir_);
  }
  fs::path dir_;
  std::optional<TestDaemon> daemon_;
};

TEST_F(DaemonRuns, EmptyStdinEndsTheProgramsInput) {
  ASSERT_TRUE(daemon_->start());
  ASSERT_TRUE(daemon_->wait_for_ready("python-256m"));
  // The API's stdin "" (its default).
  auto reply = daemon_->post(
      "/v1/run",
      R"J({"language":"python","code":"import sys; print(repr(sys.stdin.read()))","stdin":"","timeout_s":20})J");
  ASSERT_EQ(reply.status, 200) << reply.body;
  json result = json::parse(reply.body);
  EXPECT_EQ(result["status"], "ok") << reply.body;
  EXPECT_EQ(result["stdout"], "''\n");
  EXPECT_EQ(result["pool_hit"], true);
  // The CLI through the daemon, stdin /dev/null.
  CliOptions options;
  options.extra_env = {"AIRLOCK_SOCKET=" + daemon_->socket(), "AIRLOCK_RUNTIME_DIR=" + dir_.string()};
  for (const auto& reader : kStdinReaders) {
    auto cli = run_cli({"-v", "run", "--timeout", "20", "--lang", reader.language, reader.code}, options);
    EXPECT_EQ(cli.exit_code, 0) << reader.code << ": " << cli.err;
    EXPECT_EQ(cli.out, reader.out) << reader.code;
    EXPECT_NE(cli.err.find("running through airlockd"), std::string::npos) << cli.err;
  }
}

// The parent goes on after its forked child has ended, however that child
// ends, as under `python3 main.py`.
TEST_F(Cli, AForkedChildsEndIsNotTheRunsEnd) {
  const std::string parent =
      "import os, sys, time\n"
      "pid = os.fork()\n"
      "if pid:\n"
      "    _, status = os.waitpid(pid, 0)\n"
      "    time.sleep(0.5)\n"  // past the agent's 200 ms for stragglers
      "    print('parent saw', os.waitstatus_to_exitcode(status))\n"
      "    sys.exit(3)\n";
  const std::pair<std::string, int> children[] = {
      {"print('child')\nsys.exit(99)\n", 99},
      {"print('child')\n", 0},
      {"print('child')\nraise ValueError('in the child')\n", 1},
      // Not our wrapper: a child that writes the interpreter's exit notice itself.
      {"print('child')\nos.write(3, b'exit 42\\n')\nos._exit(0)\n", 0},
  };
  for (const auto& [child, status] : children) {
    auto result = airlock({"run", "--timeout", "20", "--lang", "python", parent + child});
    EXPECT_EQ(result.exit_code, 3) << child << result.err;
    EXPECT_EQ(result.out, "child\nparent saw " + std::to_string(status) + "\n") << child;
  }
}

TEST_F(Cli, MultiprocessingWorksWithEveryStartMethod) {
  CliOptions options;
  options.timeout = std::chrono::seconds(240);
  auto result =
      airlock({"run", "--timeout", "200", "--lang", "python",
               "import concurrent.futures, multiprocessing, sys\n"
               "def square(x):\n    return x * x\n"
               "def leave(code):\n    sys.exit(code)\n"
               "if __name__ == '__main__':\n"
               "    for method in ('fork', 'forkserver', 'spawn'):\n"
               "        context = multiprocessing.get_context(method)\n"
               "        process = context.Process(target=leave, args=(7,))\n"
               "        process.start()\n"
               "        process.join()\n"
               "        with concurrent.futures.ProcessPoolExecutor(2, mp_context=context) as pool:\n"
               "            squares = list(pool.map(square, range(4)))\n"
               "        print(method, process.exitcode, squares, flush=True)\n"
               "    sys.exit(5)\n"},
              options);
  EXPECT_EQ(result.exit_code, 5) << result.err;
  EXPECT_EQ(result.out,
            "fork 7 [0, 1, 4, 9]\n"
            "forkserver 7 [0, 1, 4, 9]\n"
            "spawn 7 [0, 1, 4, 9]\n");
}

// What the prestarted interpreter prints for a program that fails must be
// what a fresh `python3 main.py` prints (--fresh-interpreter), byte
// for byte but for object addresses, and never show our wrapper's frames.
TEST_F(Cli, PythonFailuresReadAsUnderAFreshInterpreter) {
  const std::string programs[] = {
      "print(\n",
      "if True:\nprint(1)\n",
      "def fail():\n    raise ValueError('boom')\nfail()\n",
      "try:\n    1 / 0\nexcept Exception as error:\n    raise KeyError('k') from error\n",
      "raise KeyboardInterrupt\n",
      "import sys\nsys.exit('a message')\n",
      "raise SystemExit(2 ** 70)\n",
      "raise SystemExit(-1)\n",
      "raise SystemExit(3.5)\n",
      "raise SystemExit(True)\n",
      "import atexit\ndef last():\n    raise ValueError('at exit')\natexit.register(last)\nprint('ran')\n",
      "import atexit, sys\natexit.register(print, 'handler')\nsys.exit(4)\n",
  };
  const fs::path script =
      runtime_dir_.parent_path() / ("airlock-it-failure-" + std::to_string(::getpid()) + ".py");
  const std::regex address("0x[0-9a-f]+");
  for (const auto& program : programs) {
    write_file(script, program);
    // --accel tcg: no KVM probe, whose one-time notice would land in either run's stderr.
    auto prestarted = airlock({"run", "--accel", "tcg", "--lang", "python", "-f", script.string()});
    auto fresh =
        airlock({"run", "--accel", "tcg", "--lang", "python", "--fresh-interpreter", "-f", script.string()});
    EXPECT_EQ(prestarted.exit_code, fresh.exit_code) << program;
    EXPECT_EQ(prestarted.out, fresh.out) << program;
    EXPECT_EQ(std::regex_replace(prestarted.err, address, "0x?"),
              std::regex_replace(fresh.err, address, "0x?"))
        << program;
    EXPECT_EQ(prestarted.err.find("<string>"), std::string::npos) << prestarted.err;
    EXPECT_EQ(prestarted.err.find("_run"), std::string::npos) << prestarted.err;
  }
  // A NUL byte: the guest's Python 3.11.2 stops reading at it and runs the
  // rest; we report what CPython's file parser does from 3.11.4 on.
  write_file(script, std::string("print(1)\nprint(2)\0\n", 18));
  auto nul = airlock({"run", "--lang", "python", "-f", script.string()});
  EXPECT_EQ(nul.exit_code, 1);
  EXPECT_EQ(nul.out, "");
  EXPECT_EQ(
      nul.err,
      "  File \"/home/sandbox/main.py\", line 2\n    print(2)\nSyntaxError: source code cannot contain null "
      "bytes\n");
  fs::remove(script);
}

// The prestarted bash becomes what `bash main.sh` started for the run
// would be (--fresh-interpreter): the same confinement (ids, groups,
// capabilities, no_new_privs, seccomp, limits, umask, open fds), directory,
// environment, shell variables, options, functions and traps, $0, $#, $-,
// and error messages with the script's own line numbers. What differs is
// left out of the comparison by name: values that differ between any two
// starts (pids, RANDOM, clocks), the cgroup's name, and BASH_ARGC, which
// shows one entry after any function call.
TEST_F(Cli, ShellRunsReadAsUnderAFreshBash) {
  const std::string probe =
      "echo \"start _=[$_] ?=$? #=$# 0=$0 -=$- line=$LINENO src=${BASH_SOURCE[*]} fn=${FUNCNAME[*]-none}\"\n"
      "declare -p >/home/sandbox/vars; grep -Ev '^declare -[-a-zA-Z]* "
      "(BASHPID|RANDOM|SRANDOM|EPOCH[A-Z]*|SECONDS|PIPESTATUS|BASH_ARGC|BASH_COMMAND|_)(=|$)' "
      "/home/sandbox/vars\n"
      "declare -f; shopt -p; set -o; trap -p; umask; ulimit -a; pwd; echo \"$PWD|$OLDPWD|$SHLVL|$HOSTNAME\"\n"
      "grep -E '^(Uid|Gid|Groups|Cap[A-Za-z]+|NoNewPrivs|Seccomp):' /proc/$$/status\n"
      // (No pipelines: bash holds a pipe's ends for a moment, and its children trace in any order.)
      "ls /proc/$$/fd >/home/sandbox/fds; echo $(</home/sandbox/fds); env >/home/sandbox/env; sort "
      "/home/sandbox/env\n"
      "nosuchcommand_here\n"
      "return 3\n"
      "f() { echo \"in f: ${FUNCNAME[*]} $LINENO\"; }; f\n"
      "exit 7\n";
  const std::vector<std::vector<std::string>> envs = {
      {},
      {"--env", "MULTI=a\nb 'c' \"d\" \\e $HOME `x`", "--env", "UTF=\xc3\xa9\xe2\x98\x83", "--env",
       "EMPTY=", "--env", "HOME=/tmp", "--env", "SHLVL=41"},
      // What bash reads only at its start: a bash of its own in both.
      {"--env", "SHELLOPTS=xtrace", "--env", "PS4=+trace "},
      {"--env", "BASH_COMPAT=51"},
  };
  const fs::path script =
      runtime_dir_.parent_path() / ("airlock-it-shell-" + std::to_string(::getpid()) + ".sh");
  write_file(script, probe);
  for (const auto& env : envs) {
    std::vector<std::string> args = {"run", "--accel", "tcg", "--lang", "shell", "-f", script.string()};
    args.insert(args.end(), env.begin(), env.end());
    auto prestarted = airlock(args);
    args.insert(args.begin() + 1, "--fresh-interpreter");
    auto fresh = airlock(args);
    const std::string context = env.empty() ? "default env" : env[1];
    EXPECT_EQ(prestarted.exit_code, 7) << context << prestarted.err;
    EXPECT_EQ(prestarted.exit_code, fresh.exit_code) << context;
    EXPECT_EQ(prestarted.out, fresh.out) << context;
    EXPECT_EQ(prestarted.err, fresh.err) << context;
    EXPECT_EQ(prestarted.out.rfind("start _=[/bin/bash] ?=0 #=0 0=/home/sandbox/main.sh -=h", 0), 0u)
        << context << prestarted.out;
    EXPECT_NE(prestarted.out.find("B line=1 src=/home/sandbox/main.sh fn=none\n"), std::string::npos)
        << context << prestarted.out;
    EXPECT_NE(prestarted.out.find("\n0 1 2 255\n"), std::string::npos) << context << prestarted.out;
    EXPECT_NE(prestarted.err.find("/home/sandbox/main.sh: line 6: nosuchcommand_here: command not found"),
              std::string::npos)
        << prestarted.err;
    EXPECT_EQ(prestarted.out.find("__airlock"), std::string::npos) << prestarted.out;
  }
  fs::remove(script);
  // Two clones of one template: bash's RANDOM was reseeded in each.
  auto random_of_a_clone = [&] {
    auto result = airlock({"run", "--accel", "tcg", "--lang", "shell", "echo $RANDOM $RANDOM $RANDOM"});
    EXPECT_EQ(result.exit_code, 0) << result.err;
    return result.out;
  };
  EXPECT_NE(random_of_a_clone(), random_of_a_clone());
}

// Clones of one template share the prestarted interpreter's hash() secret
// (docs/security.md); --fresh-interpreter gives each run its own.
TEST_F(Cli, FreshInterpreterHasAHashSecretOfItsOwn) {
  auto hash_of = [&](bool fresh) {
    std::vector<std::string> args = {"run", "--lang", "python", "print(hash('airlock'), hash(b'airlock'))"};
    if (fresh) args.insert(args.begin() + 1, "--fresh-interpreter");
    auto result = airlock(args);
    EXPECT_EQ(result.exit_code, 0) << result.err;
    return result.out;
  };
  EXPECT_EQ(hash_of(false), hash_of(false)) << "clones no longer share the secret: update docs/security.md";
  EXPECT_NE(hash_of(true), hash_of(true));
}

// Through the API, fresh_interpreter buys a hash() secret of the run's own;
// without it, pooled runs share the template's.
TEST_F(DaemonRuns, FreshInterpreterGivesEachRunItsOwnHashSecret) {
  ASSERT_TRUE(daemon_->start({"--pool-size", "1"}));
  auto hash_of_run = [this](bool fresh) {
    EXPECT_TRUE(daemon_->wait_for_ready("python-256m"));
    engine::RunRequest request = run_request("python", "print(hash('airlock'))");
    request.fresh_interpreter = fresh;
    auto reply = daemon_->run(request);
    EXPECT_EQ(reply.status, 200) << reply.body;
    return json::parse(reply.body)["stdout"].get<std::string>();
  };
  const std::string shared = hash_of_run(false);
  EXPECT_EQ(hash_of_run(false), shared) << "pooled runs are expected to share the template's secret";
  const std::string fresh = hash_of_run(true);
  EXPECT_NE(fresh, shared);
  EXPECT_NE(hash_of_run(true), fresh);
}

}  // namespace
}  // namespace airlock::testing
