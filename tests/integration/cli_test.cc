// End-to-end: the real `airlock` binary booting real microVMs (TCG here).
// Every test checks that the QEMU processes and run directories it caused
// are gone afterwards.

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "common/io.h"
#include "engine/run_result.h"
#include "engine/template_store.h"
#include "support/airlock_cli.h"
#include "support/cli_fixture.h"
#include "vmm/jail/layer.h"

namespace airlock::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

TEST_F(Cli, PythonPrints42) {
  auto result = airlock({"run", "--lang", "python", "print(6*7)"});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.out, "42\n");
}

TEST_F(Cli, JavascriptMapsAnArray) {
  auto result = airlock({"run", "--lang", "javascript", "console.log([1,2,3].map(x=>x*2).join())"});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.out, "2,4,6\n");
}

TEST_F(Cli, ShellStderrAndExitCode) {
  auto result = airlock({"run", "--lang", "shell", "echo hi >&2; exit 3"});
  EXPECT_EQ(result.exit_code, 3);
  EXPECT_EQ(result.out, "");
  EXPECT_EQ(result.err, "hi\n");
}

TEST_F(Cli, CodeFromFileWithStdin) {
  fs::path script = runtime_dir_.parent_path() / ("airlock-it-script-" + std::to_string(::getpid()) + ".py");
  write_file(script, "import sys\nfor line in sys.stdin:\n    print(line.strip().upper())\n");
  CliOptions options;
  options.stdin_data = "hello\nworld\n";
  auto result = airlock({"run", "--lang", "python", "-f", script.string()}, options);
  fs::remove(script);
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.out, "HELLO\nWORLD\n");
}

TEST_F(Cli, LargeBinaryStdinRoundTripsExactly) {
  std::string data(3 << 20, '\0');
  std::mt19937 random(42);
  for (auto& byte : data) byte = static_cast<char>(random());
  CliOptions options;
  options.stdin_data = data;
  auto result =
      airlock({"run", "--lang", "shell", "--stdout-limit", std::to_string(4 << 20), "cat"}, options);
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.out.size(), data.size());
  EXPECT_TRUE(result.out == data) << "stdin came back altered";
}

TEST_F(Cli, TimeoutKillsTheProgramAndSaysSo) {
  auto result = airlock({"run", "--timeout", "2", "--lang", "python", "while True: pass"});
  EXPECT_EQ(result.exit_code, 124);
  EXPECT_NE(result.err.find("timed out"), std::string::npos) << result.err;
  // Boot plus the 2 s limit plus a few seconds of teardown slack.
  EXPECT_LT(result.elapsed, std::chrono::seconds(15));
}

TEST_F(Cli, TimeoutKillsBackgroundedAndTermIgnoringProcessesToo) {
  auto result = airlock({"run", "--json", "--timeout", "2", "--lang", "shell",
                         "trap '' TERM; (trap '' TERM; sleep 1000) & setsid sleep 1000 & sleep 1000"});
  json parsed = json::parse(result.out);
  EXPECT_EQ(parsed["status"], "timeout");
  EXPECT_EQ(result.exit_code, 124);
}

TEST_F(Cli, JsonResultHasEveryField) {
  json result = airlock_json({"run", "--lang", "python", "print(1)"});
  EXPECT_EQ(result["status"], "ok");
  EXPECT_EQ(result["exit_code"], 0);
  EXPECT_TRUE(result["signal"].is_null());
  EXPECT_EQ(result["stdout"], "1\n");
  EXPECT_EQ(result["stdout_encoding"], "utf-8");
  EXPECT_EQ(result["stderr"], "");
  EXPECT_EQ(result["stdout_truncated"], false);
  EXPECT_EQ(result["stderr_truncated"], false);
  for (const char* key : {"setup_ms", "boot_ms", "execute_ms", "total_ms"}) {
    ASSERT_TRUE(result["timing"][key].is_number_integer()) << key;
  }
  EXPECT_GE(result["timing"]["total_ms"].get<int>(),
            result["timing"]["boot_ms"].get<int>() + result["timing"]["execute_ms"].get<int>());
  EXPECT_TRUE(result["accel"] == "tcg" || result["accel"] == "kvm") << result["accel"];
  EXPECT_EQ(result["cli_exit_code"], 0);
}

TEST_F(Cli, EnvironmentUserAndWorkingDirectory) {
  auto result = airlock({"run", "--lang", "python", "-e", "GREETING=héllo wörld", "-e", "EMPTY=",
                         "import os; print(os.environ['GREETING'], repr(os.environ['EMPTY']), os.getuid(), "
                         "os.getgid(), os.getcwd(), os.environ['HOME'])"});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.out, "héllo wörld '' 1000 1000 /home/sandbox /home/sandbox\n");
}

TEST_F(Cli, UnicodeRoundTripsExactly) {
  auto result = airlock({"run", "--lang", "python", "print('h\u00e9llo \u20ac \U0001F600 \u4e2d\u6587')"});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.out, "h\u00e9llo \u20ac \U0001F600 \u4e2d\u6587\n");
}

TEST_F(Cli, ArbitraryBytesRoundTripExactly) {
  std::string all_bytes;
  for (int i = 0; i < 256; ++i) all_bytes.push_back(static_cast<char>(i));
  const char* code =
      "import sys; sys.stdout.buffer.write(bytes(range(256))); sys.stderr.buffer.write(b'\\xff\\x00\\xfe')";
  auto streamed = airlock({"run", "--lang", "python", code});
  EXPECT_EQ(streamed.exit_code, 0) << streamed.err;
  EXPECT_TRUE(streamed.out == all_bytes) << "stdout bytes altered";
  EXPECT_TRUE(streamed.err == std::string("\xff\x00\xfe", 3));

  json result = airlock_json({"run", "--lang", "python", code});
  EXPECT_EQ(result["stdout_encoding"], "base64");
  EXPECT_TRUE(engine::base64_decode(result["stdout"].get<std::string>()) == all_bytes);
  EXPECT_EQ(result["stderr_encoding"], "base64");
  EXPECT_TRUE(engine::base64_decode(result["stderr"].get<std::string>()) == std::string("\xff\x00\xfe", 3));
}

TEST_F(Cli, FiveMebibytesOfOutputAreCappedAndFlagged) {
  json result = airlock_json({"run", "--lang", "python", "import sys\nsys.stdout.write('x' * (5 << 20))"});
  EXPECT_EQ(result["status"], "output_limit");
  EXPECT_EQ(result["stdout"].get<std::string>().size(), 1u << 20);
  EXPECT_EQ(result["stdout_truncated"], true);
  EXPECT_EQ(result["stderr_truncated"], false);
  EXPECT_EQ(result["cli_exit_code"], 125);
}

TEST_F(Cli, StderrLimitIsConfigurable) {
  json result = airlock_json({"run", "--stderr-limit", "10", "--lang", "shell", "echo 0123456789abcdef >&2"});
  EXPECT_EQ(result["status"], "output_limit");
  EXPECT_EQ(result["stderr"], "0123456789");
  EXPECT_EQ(result["stderr_truncated"], true);
}

TEST_F(Cli, OutputStreamsAsItIsProduced) {
  std::chrono::steady_clock::time_point first_seen{};
  CliOptions options;
  options.on_stdout = [&](const std::string& so_far, pid_t) {
    if (first_seen == std::chrono::steady_clock::time_point{} && so_far.find("first") != std::string::npos) {
      first_seen = std::chrono::steady_clock::now();
    }
  };
  auto result = airlock(
      {"run", "--lang", "python", "import time\nprint('first')\ntime.sleep(2)\nprint('second')"}, options);
  auto finished = std::chrono::steady_clock::now();
  EXPECT_EQ(result.out, "first\nsecond\n");
  ASSERT_NE(first_seen, std::chrono::steady_clock::time_point{});
  EXPECT_GT(finished - first_seen, std::chrono::milliseconds(1500)) << "output was not streamed";
}

TEST_F(Cli, BackgroundProcessDoesNotHoldTheRunOpen) {
  auto result = airlock({"run", "--lang", "shell", "sleep 100 & echo done"});
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_EQ(result.out, "done\n");
  EXPECT_LT(result.elapsed, std::chrono::seconds(20));
}

TEST_F(Cli, ProgramKilledBySignalIsReported) {
  json result =
      airlock_json({"run", "--lang", "python", "import os, signal\nos.kill(os.getpid(), signal.SIGTERM)"});
  EXPECT_EQ(result["status"], "killed");
  EXPECT_EQ(result["signal"], 15);
  EXPECT_TRUE(result["exit_code"].is_null());
  EXPECT_EQ(result["cli_exit_code"], 143);
}

TEST_F(Cli, ManyZombiesAreReaped) {
  auto result =
      airlock({"run", "--lang", "shell", "for i in $(seq 200); do (exit 0) & done; wait; echo reaped"});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.out, "reaped\n");
}

TEST_F(Cli, FilesWrittenInTheGuestStayInTheGuest) {
  auto first = airlock({"run", "--lang", "shell", "echo secret > /tmp/left-behind && cat /tmp/left-behind"});
  EXPECT_EQ(first.out, "secret\n") << first.err;
  auto second = airlock({"run", "--lang", "shell", "cat /tmp/left-behind 2>&1 || echo absent"});
  EXPECT_NE(second.out.find("absent"), std::string::npos) << second.out;
}

TEST_F(Cli, InvalidArgumentsFailBeforeAnyVmStarts) {
  struct Case {
    std::vector<std::string> args;
    const char* message;
  };
  const std::string big_file =
      (runtime_dir_.parent_path() / ("airlock-it-big-" + std::to_string(::getpid()))).string();
  write_file(big_file, std::string((1 << 20) + 1, 'x'));
  std::vector<Case> cases = {
      {{"run", "--lang", "cobol", "x"}, "unknown language 'cobol'"},
      {{"run", "--lang", "python", "--timeout", "0", "x"}, "timeout 0 s is out of range"},
      {{"run", "--lang", "python", "--timeout", "301", "x"}, "timeout 301 s is out of range"},
      {{"run", "--lang", "python", "--memory", "64", "x"}, "memory 64 MiB is out of range"},
      {{"run", "--lang", "python", "--memory", "4096", "x"}, "memory 4096 MiB is out of range"},
      {{"run", "--lang", "python", "-f", "/no/such/file.py"}, "/no/such/file.py"},
      {{"run", "--lang", "python", "-f", big_file}, "larger than the limit"},
      {{"run", "--lang", "python"}, "no code given"},
      {{"run", "--lang", "python", "-e", "NOVALUE", "x"}, "NAME=value"},
      {{"run", "--lang", "python", "--accel", "warp", "x"}, "unknown accelerator 'warp'"},
      {{"run", "--lang", "python", "--kernel", "nope", "x"}, "unknown kernel 'nope'"},
      {{"run", "--lang", "python", "--images", "/nonexistent/manifest.json", "x"}, "does not exist"},
      {{"run", "--lang", "python", "--timeout", "abc", "x"}, "timeout"},
      {{"frobnicate"}, "frobnicate"},
  };
  for (const auto& test_case : cases) {
    auto result = airlock(test_case.args);
    EXPECT_EQ(result.exit_code, 125) << test_case.message << "\n" << result.err;
    EXPECT_NE(result.err.find(test_case.message), std::string::npos)
        << "expected '" << test_case.message << "' in: " << result.err;
    EXPECT_TRUE(our_qemu_processes().empty());
    EXPECT_TRUE(fs::is_empty(runtime_dir_)) << "a run directory was made for an invalid request";
  }
  fs::remove(big_file);

  // Code over 1 MiB cannot be an argument (the kernel caps one at 128 KiB): send it on stdin.
  CliOptions options;
  options.stdin_data = std::string((1 << 20) + 1, 'x');
  auto result = airlock({"run", "--lang", "python", "-f", "-"}, options);
  EXPECT_EQ(result.exit_code, 125);
  EXPECT_NE(result.err.find("larger than the limit"), std::string::npos) << result.err;
  options.stdin_data = "";
  result = airlock({"run", "--lang", "python", "-f", "-"}, options);
  EXPECT_EQ(result.exit_code, 125);
  EXPECT_NE(result.err.find("code is empty"), std::string::npos) << result.err;
}

TEST_F(Cli, InterruptStopsTheRunAndCleansUp) {
  CliOptions options;
  bool sent = false;
  options.on_stdout = [&sent](const std::string& so_far, pid_t pid) {
    if (!sent && so_far.find("running") != std::string::npos) {
      ::kill(pid, SIGINT);
      sent = true;
    }
  };
  auto result =
      airlock({"run", "--lang", "python", "import time\nprint('running')\ntime.sleep(100)"}, options);
  EXPECT_TRUE(sent);
  EXPECT_EQ(result.exit_code, 128 + SIGINT);
  EXPECT_NE(result.err.find("cancelled"), std::string::npos) << result.err;
  EXPECT_LT(result.elapsed, std::chrono::seconds(30));
}

TEST_F(Cli, KillingTheCliTakesQemuWithItAndTheNextRunReapsItsDirectory) {
  CliOptions options;
  options.on_stdout = [](const std::string& so_far, pid_t pid) {
    if (so_far.find("running") != std::string::npos) ::kill(pid, SIGKILL);
  };
  auto killed =
      airlock({"run", "--lang", "python", "import time\nprint('running')\ntime.sleep(100)"}, options);
  EXPECT_EQ(killed.exit_code, 128 + SIGKILL);
  // QEMU dies with its parent (PR_SET_PDEATHSIG); give the kernel a moment.
  for (int i = 0; i < 50 && !our_qemu_processes().empty(); ++i) ::usleep(100'000);
  EXPECT_TRUE(our_qemu_processes().empty()) << "QEMU outlived the CLI that was killed";
  // The dead CLI's run directory is still there; the next run reaps it.
  EXPECT_FALSE(fs::is_empty(runtime_dir_));
  auto next = airlock({"run", "--lang", "shell", "echo ok"});
  EXPECT_EQ(next.out, "ok\n");
}

TEST_F(Cli, OutOfMemoryIsReportedAsOom) {
  json result = airlock_json(
      {"run", "--lang", "python", "chunks = []\nwhile True: chunks.append(bytearray(16 << 20))"});
  EXPECT_EQ(result["status"], "oom");
  EXPECT_EQ(result["signal"], 9);
  EXPECT_EQ(result["cli_exit_code"], 137);
}

TEST_F(Cli, QemuKilledMidRunIsAnInternalErrorAndLeavesNothing) {
  CliOptions options;
  bool killed = false;
  options.on_stdout = [&](const std::string& so_far, pid_t) {
    if (killed || so_far.find("running") == std::string::npos) return;
    for (pid_t pid : our_qemu_processes()) killed |= ::kill(pid, SIGKILL) == 0;
  };
  auto result =
      airlock({"run", "--lang", "python", "import time\nprint('running')\ntime.sleep(100)"}, options);
  EXPECT_TRUE(killed);
  EXPECT_EQ(result.exit_code, 125);
  EXPECT_NE(result.err.find("the VM stopped unexpectedly"), std::string::npos) << result.err;
  EXPECT_LT(result.elapsed, std::chrono::seconds(20));
}

TEST_F(Cli, GuestKernelPanicIsAnInternalErrorWithTheConsoleTail) {
  // A guest with no init panics at boot: the "guest crash" path of teardown.
  const fs::path manifest_path =
      fs::path(AIRLOCK_BIN).parent_path().parent_path() / "images" / "manifest.json";
  json manifest = json::parse(read_file(manifest_path, 1 << 20));
  const fs::path broken_dir =
      runtime_dir_.parent_path() / ("airlock-it-broken-" + std::to_string(::getpid()));
  fs::create_directories(broken_dir);
  write_file(broken_dir / "empty.cpio", "");
  manifest["kernels"]["minimal"]["initramfs"] = (broken_dir / "empty.cpio").string();
  write_file(broken_dir / "manifest.json", manifest.dump());
  auto result =
      airlock({"run", "--images", (broken_dir / "manifest.json").string(), "--lang", "shell", "echo x"});
  fs::remove_all(broken_dir);
  EXPECT_EQ(result.exit_code, 125);
  EXPECT_NE(result.err.find("the VM stopped unexpectedly"), std::string::npos) << result.err;
  EXPECT_NE(result.err.find("Kernel panic"), std::string::npos) << result.err;
}

TEST_F(Cli, ClonesOfOneSnapshotGetDifferentRandomnessAndTheCurrentTime) {
  const char* code =
      "import os, random, time\nprint(os.urandom(16).hex(), random.getrandbits(64), time.time())";
  json first = airlock_json({"run", "--lang", "python", code});
  json second = airlock_json({"run", "--lang", "python", code});
  ASSERT_EQ(first["status"], "ok") << first.dump();
  ASSERT_EQ(second["status"], "ok") << second.dump();
  EXPECT_EQ(first["from_snapshot"], true);
  EXPECT_EQ(second["from_snapshot"], true);
  std::istringstream a(first["stdout"].get<std::string>()), b(second["stdout"].get<std::string>());
  std::string urandom_a, urandom_b, bits_a, bits_b;
  double time_a, time_b;
  a >> urandom_a >> bits_a >> time_a;
  b >> urandom_b >> bits_b >> time_b;
  EXPECT_NE(urandom_a, urandom_b) << "two clones returned the same os.urandom bytes";
  EXPECT_NE(bits_a, bits_b) << "two clones' random module produced the same numbers";
  // The guest clock is set on restore, not frozen at the snapshot.
  const double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  EXPECT_NEAR(time_b, now, 10.0);
}

TEST_F(Cli, PrestartedPythonBehavesLikeAFreshInterpreter) {
  auto result = airlock({"run", "--lang", "python",
                         "import sys, __main__\n"
                         "print(sys.argv, __name__, __main__.__file__, sys.path[0])\n"
                         "print(sorted(k for k in globals() if not k.startswith('__')))\n"
                         "def fail():\n    raise ValueError('boom')\nfail()"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_EQ(result.out,
            "['/home/sandbox/main.py'] __main__ /home/sandbox/main.py /home/sandbox\n"
            "['sys']\n");
  EXPECT_EQ(
      result.err.rfind("Traceback (most recent call last):\n  File \"/home/sandbox/main.py\", line 6", 0), 0u)
      << result.err;
  EXPECT_EQ(result.err.find("<string>"), std::string::npos) << "the prestart wrapper shows in the traceback";
  EXPECT_NE(result.err.find("ValueError: boom"), std::string::npos);

  auto syntax = airlock({"run", "--lang", "python", "print("});
  EXPECT_EQ(syntax.exit_code, 1);
  EXPECT_NE(syntax.err.find("SyntaxError: '(' was never closed"), std::string::npos) << syntax.err;

  auto exits = airlock({"run", "--lang", "python", "import sys; sys.exit(7)"});
  EXPECT_EQ(exits.exit_code, 7);
  // As CPython does: a status is taken modulo 256, a message goes to stderr with status 1.
  EXPECT_EQ(airlock({"run", "--lang", "python", "raise SystemExit(300)"}).exit_code, 44);
  auto message = airlock({"run", "--lang", "python", "import sys; sys.exit('bad input')"});
  EXPECT_EQ(message.exit_code, 1);
  EXPECT_EQ(message.err, "bad input\n");
  // Closing the interpreter's control socket only costs the early exit notice.
  auto closed =
      airlock({"run", "--lang", "python", "import os; os.close(3); print('on'); raise SystemExit(5)"});
  EXPECT_EQ(closed.exit_code, 5) << closed.err;
  EXPECT_EQ(closed.out, "on\n");
}

TEST_F(Cli, InterpreterStartupVariablesGetAFreshInterpreter) {
  // PYTHONHASHSEED only works when set before Python starts, so a run that
  // sets it must not be handed to the prestarted interpreter.
  auto result = airlock({"run", "--lang", "python", "-e", "PYTHONHASHSEED=0",
                         "import sys; print(sys.flags.hash_randomization)"});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.out, "0\n");
}

TEST_F(Cli, NoSnapshotBootsAFreshKernel) {
  json result = airlock_json({"run", "--no-snapshot", "--lang", "python", "print('fresh')"});
  EXPECT_EQ(result["status"], "ok");
  EXPECT_EQ(result["stdout"], "fresh\n");
  EXPECT_EQ(result["from_snapshot"], false);
}

TEST_F(Cli, CorruptSnapshotIsDetectedDiscardedAndRebuilt) {
  // A private cache, so breaking its template disturbs no other test.
  const fs::path cache = runtime_dir_.parent_path() / ("airlock-it-cache-" + std::to_string(::getpid()));
  CliOptions options;
  options.extra_env = {"AIRLOCK_CACHE_DIR=" + cache.string()};
  json built = json::parse(airlock({"run", "--json", "--lang", "shell", "echo one"}, options).out);
  EXPECT_EQ(built["from_snapshot"], true);
  int corrupted = 0;
  for (auto& entry : fs::directory_iterator(cache / "templates")) {
    if (entry.is_directory() && fs::exists(entry.path() / "state")) {
      write_file(entry.path() / "state", "this is not a migration stream");
      ++corrupted;
    }
  }
  ASSERT_EQ(corrupted, 1);
  auto fallback = airlock({"run", "--json", "--lang", "shell", "echo two"}, options);
  json parsed = json::parse(fallback.out);
  EXPECT_EQ(parsed["status"], "ok");
  EXPECT_EQ(parsed["stdout"], "two\n");
  EXPECT_EQ(parsed["from_snapshot"], false) << "a broken snapshot must never be half-used";
  EXPECT_NE(fallback.err.find("could not be restored"), std::string::npos) << fallback.err;
  json rebuilt = json::parse(airlock({"run", "--json", "--lang", "shell", "echo three"}, options).out);
  EXPECT_EQ(rebuilt["stdout"], "three\n");
  EXPECT_EQ(rebuilt["from_snapshot"], true);
  engine::TemplateStore(cache.string() + "/templates", "/dev/shm", vmm::jail::jail_uid()).discard_all();
  fs::remove_all(cache);
}

TEST_F(Cli, FallbackCloudKernelRunsPython) {
  auto result =
      airlock({"run", "--kernel", "cloud", "--lang", "python", "import json; print(json.dumps({'a': 1}))"});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.out, "{\"a\": 1}\n");
}

TEST_F(Cli, ExplicitKvmEitherWorksOrSaysWhyNot) {
  auto result = airlock({"run", "--accel", "kvm", "--json", "--lang", "shell", "echo ok"});
  if (result.exit_code == 0) {
    EXPECT_EQ(json::parse(result.out)["accel"], "kvm");
  } else {
    EXPECT_EQ(result.exit_code, 125);
    EXPECT_NE(result.err.find("KVM was requested but is not usable"), std::string::npos) << result.err;
  }
}

}  // namespace
}  // namespace airlock::testing
