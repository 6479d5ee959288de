// Faults of ordinary runs a new user meets first (issue 10): empty stdin,
// a program that forks, what a Python traceback shows. Real VMs through the
// real CLI (and airlockd), as cli_test.cc does.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>

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
    dir_ = fs::temp_directory_path() / ("airlock-f-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
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

}  // namespace
}  // namespace airlock::testing
