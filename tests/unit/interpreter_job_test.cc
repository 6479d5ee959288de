#include "guest/interpreter_job.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "common/child_process.h"
#include "common/io.h"
#include "common/temp_dir.h"

namespace airlock::guest {
namespace {

protocol::Exec awkward_exec() {
  protocol::Exec exec;
  exec.argv = {"/bin/bash", "/home/sandbox/main.sh", "two words", "it's \\ $HOME `x`"};
  // Every byte value but NUL (which no environment can hold), newlines,
  // quotes, backslashes, UTF-8 and \x7f among them.
  std::string all;
  for (int c = 1; c < 256; ++c) all += static_cast<char>(c);
  exec.env = {"PATH=/usr/bin:/bin", "ALL=" + all, "MULTI=a\nb\n", "QUOTE='\"", "UTF=é☃", "EMPTY="};
  exec.cwd = "/home/sandbox/dir with 'quote'";
  return exec;
}

// What bash makes of a shell job, read as the prestarted bash reads it
// (a count line, then `read -N` of that many characters in a UTF-8
// locale) and eval'd: every word NUL-terminated.
std::string bash_reads(const std::string& job) {
  TempDir dir = TempDir::create("/tmp", "job-test-");
  write_file(dir.file("job"), job);
  const char* script =
      "exec 3<\"$1\"; read -r -u 3 n; IFS= read -r -u 3 -N \"$n\" t; eval \"$t\"; "
      "printf '%s\\0' \"${__airlock_warm-}\" \"$__airlock_cwd\" \"${#__airlock_env[@]}\" "
      "\"${__airlock_env[@]}\" "
      "\"${#__airlock_args[@]}\" \"${__airlock_args[@]}\" \"$__airlock_hostname\"";
  CommandResult result = run_command({"/bin/bash", "-c", script, "bash", dir.file("job")},
                                     {"LANG=C.UTF-8", "PATH=/usr/bin:/bin"}, std::chrono::seconds(10));
  EXPECT_EQ(result.status.exit_code, 0) << result.output;
  return result.output;
}

std::string hostname() {
  char name[256] = {};
  ::gethostname(name, sizeof name - 1);
  return name;
}

std::string nul_joined(const std::vector<std::string>& words) {
  std::string out;
  for (const auto& word : words) out += word + '\0';
  return out;
}

TEST(InterpreterJob, ShellJobsReachBashByteForByte) {
  protocol::Exec exec = awkward_exec();
  const std::string job = job_line(exec, /*warm=*/false, "shell");
  const size_t newline = job.find('\n');
  ASSERT_NE(newline, std::string::npos);
  EXPECT_EQ(std::stoul(job.substr(0, newline)), job.size() - newline - 1);
  for (unsigned char c : job.substr(newline + 1)) {
    EXPECT_TRUE(c == '\n' || (c >= 0x20 && c < 0x7f)) << "byte " << int(c) << " left as it is";
  }
  std::vector<std::string> expected = {"", exec.cwd, std::to_string(exec.env.size())};
  expected.insert(expected.end(), exec.env.begin(), exec.env.end());
  expected.push_back("2");
  expected.insert(expected.end(), exec.argv.begin() + 2, exec.argv.end());
  expected.push_back(hostname());
  EXPECT_EQ(bash_reads(job), nul_joined(expected));
}

TEST(InterpreterJob, ShellWarmUpJobsSayWarm) {
  protocol::Exec exec = awkward_exec();
  exec.argv.resize(2);
  const std::string job = job_line(exec, /*warm=*/true, "shell");
  std::vector<std::string> expected = {"1", exec.cwd, std::to_string(exec.env.size())};
  expected.insert(expected.end(), exec.env.begin(), exec.env.end());
  expected.push_back("0");
  expected.push_back(hostname());
  EXPECT_EQ(bash_reads(job), nul_joined(expected));
}

TEST(InterpreterJob, JsonJobsAreOneLine) {
  protocol::Exec exec = awkward_exec();
  exec.argv = {"/usr/bin/python3", "/home/sandbox/main.py"};
  const std::string job = job_line(exec, /*warm=*/true, "json");
  ASSERT_EQ(job.find('\n'), job.size() - 1);
  auto parsed = nlohmann::json::parse(job);
  EXPECT_EQ(parsed["path"], "/home/sandbox/main.py");
  EXPECT_EQ(parsed["argv"], (std::vector<std::string>{"/home/sandbox/main.py"}));
  EXPECT_EQ(parsed["cwd"], exec.cwd);
  EXPECT_EQ(parsed["warm"], true);
  EXPECT_EQ(parsed["env"][2], "MULTI=a\nb\n");
}

}  // namespace
}  // namespace airlock::guest
