// `airlock repo` (issue 15, item 6): a repository served by git's own
// http-backend (CGI, under Python's http.server on loopback) is cloned in
// a fresh sandbox whose network reaches only its host, and a command runs
// in the checkout: the default branch, a tag, a commit; a clone that fails
// and a URL the network cannot carry are named.

#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <thread>

#include "common/child_process.h"
#include "common/io.h"
#include "common/temp_dir.h"
#include "support/cli_fixture.h"

namespace airlock::testing {
namespace {

namespace fs = std::filesystem;

// git-http-backend run as CGI by a few lines of Python (http.server's own
// CGI handler answers 200 whatever the script's Status says).
constexpr const char* kServer = R"PY(
import http.server, os, subprocess, sys, urllib.parse
class Git(http.server.BaseHTTPRequestHandler):
    def handle_one(self):
        url = urllib.parse.urlsplit(self.path)
        prefix = "/cgi-bin/git-http-backend"
        if not url.path.startswith(prefix):
            return self.send_error(404)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        env = dict(PATH="/usr/bin:/bin", GIT_PROJECT_ROOT=sys.argv[2], GIT_HTTP_EXPORT_ALL="1",
                   REQUEST_METHOD=self.command, PATH_INFO=url.path[len(prefix):], QUERY_STRING=url.query,
                   CONTENT_TYPE=self.headers.get("Content-Type", ""), CONTENT_LENGTH=str(len(body)),
                   REMOTE_ADDR="127.0.0.1", GIT_PROTOCOL=self.headers.get("Git-Protocol", ""))
        out = subprocess.run(["/usr/lib/git-core/git-http-backend"], input=body, env=env, capture_output=True).stdout
        head, _, payload = out.partition(b"\r\n\r\n")
        headers = [line.split(":", 1) for line in head.decode().split("\r\n") if ":" in line]
        status = next((int(v.split()[0]) for k, v in headers if k.lower() == "status"), 200)
        self.send_response(status)
        for key, value in headers:
            if key.lower() != "status":
                self.send_header(key, value.strip())
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
    do_GET = do_POST = handle_one
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Git).serve_forever()
)PY";

class Repo : public Cli {
 protected:
  void SetUp() override {
    Cli::SetUp();
    work_ = TempDir::create("/tmp", "airlock-repo-it-");
    make_repository();
    write_file(work_.file("server.py"), kServer);
    port_ = free_loopback_port();
    SpawnOptions options;
    options.env = {"PATH=/usr/bin:/bin"};
    server_ = ChildProcess::spawn(
        {"/usr/bin/python3", work_.file("server.py"), std::to_string(port_), work_.file("repos")}, options);
    for (int i = 0; i < 100; ++i) {
      auto probe = run_command({"curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", info_refs()}, {},
                               std::chrono::seconds(10));
      if (probe.output == "200") break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  void TearDown() override {
    server_.kill(SIGKILL);
    server_.wait();
    work_.remove();
    Cli::TearDown();
  }

  void git(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {"git", "-C",         work_.file("src"), "-c", "user.email=t@test",
                                     "-c",  "user.name=t"};
    argv.insert(argv.end(), args.begin(), args.end());
    auto result = run_command(argv, {"PATH=/usr/bin:/bin", "HOME=" + work_.path()}, std::chrono::seconds(30));
    ASSERT_EQ(result.status.exit_code, 0) << result.output;
  }
  std::string head() {
    return run_command({"git", "-C", work_.file("src"), "rev-parse", "HEAD"}, {}, std::chrono::seconds(10))
        .output.substr(0, 40);
  }
  // VERSION 1 (tagged v1; `first_` is its commit), then VERSION 2 on main.
  void make_repository() {
    fs::create_directories(work_.file("src"));
    git({"init", "-q", "-b", "main"});
    write_file(work_.file("src/VERSION"), "1\n");
    write_file(work_.file("src/test_sum.py"),
               "import unittest\n\nclass Sum(unittest.TestCase):\n    def test_sum(self):\n"
               "        self.assertEqual(sum([1, 2, 3]), 6)\n");
    git({"add", "."});
    git({"commit", "-q", "-m", "one"});
    git({"tag", "v1"});
    first_ = head();
    write_file(work_.file("src/VERSION"), "2\n");
    git({"commit", "-q", "-am", "two"});
    fs::create_directories(work_.file("repos"));
    auto bare = run_command({"git", "clone", "-q", "--bare", work_.file("src"), work_.file("repos/proj.git")},
                            {}, std::chrono::seconds(30));
    ASSERT_EQ(bare.status.exit_code, 0) << bare.output;
  }
  std::string info_refs() const {
    return "http://127.0.0.1:" + std::to_string(port_) +
           "/cgi-bin/git-http-backend/proj.git/info/refs?service=git-upload-pack";
  }
  CliResult repo(std::vector<std::string> args, const std::string& path = "proj.git") {
    args.insert(args.begin(), {"repo", "http://git.test/cgi-bin/git-http-backend/" + path, "--test-resolve",
                               "git.test=127.0.0.1:" + std::to_string(port_)});
    return airlock(args);
  }

  TempDir work_;
  int port_ = 0;
  ChildProcess server_;
  std::string first_;
};

TEST_F(Repo, ClonesARepositoryAndRunsACommandInItsCheckout) {
  auto latest =
      repo({"--lang", "python", "--command", "cat VERSION; python3 -m unittest -q 2>&1 | tail -n 1; pwd"});
  EXPECT_EQ(latest.exit_code, 0) << latest.err;
  EXPECT_EQ(latest.out, "2\nOK\n/home/sandbox/repo\n") << latest.err;
  EXPECT_NE(latest.err.find("airlock: cloned http://git.test/"), std::string::npos) << latest.err;

  auto tagged = repo({"--ref", "v1", "--command", "cat VERSION; exit 3"});
  EXPECT_EQ(tagged.exit_code, 3) << "the command's own exit status: " << tagged.err;
  EXPECT_EQ(tagged.out, "1\n");
  auto commit = repo({"--ref", first_, "--command", "git rev-parse HEAD; cat VERSION"});
  EXPECT_EQ(commit.exit_code, 0) << commit.err;
  EXPECT_EQ(commit.out, first_ + "\n1\n");

  // Only the repository's host: anything else the command reaches for is refused.
  auto elsewhere = repo({"--command", "curl -sS -m 10 http://example.com/ -o /dev/null; echo curl=$?"});
  EXPECT_NE(elsewhere.out.find("curl="), std::string::npos) << elsewhere.err;
  EXPECT_EQ(elsewhere.out.find("curl=0"), std::string::npos) << elsewhere.out;

  // Credentials in the URL go to git, never into what airlock prints.
  auto with_token =
      airlock({"repo", "http://user:s3cret@git.test/cgi-bin/git-http-backend/proj.git", "--test-resolve",
               "git.test=127.0.0.1:" + std::to_string(port_), "--command", "cat VERSION"});
  EXPECT_EQ(with_token.out, "2\n") << with_token.err;
  EXPECT_NE(with_token.err.find("airlock: cloned http://git.test/"), std::string::npos) << with_token.err;
  EXPECT_EQ(with_token.err.find("s3cret"), std::string::npos) << with_token.err;

  auto missing = repo({"--command", "true"}, "nope.git");
  EXPECT_EQ(missing.exit_code, 128) << missing.err;
  EXPECT_NE(
      missing.err.find("airlock: git clone of http://git.test/cgi-bin/git-http-backend/nope.git failed"),
      std::string::npos)
      << missing.err;
  auto ssh = airlock({"repo", "git@example.com:team/proj.git", "--command", "true"});
  EXPECT_EQ(ssh.exit_code, 125);
  EXPECT_NE(ssh.err.find("HTTP and HTTPS only"), std::string::npos) << ssh.err;
  EXPECT_TRUE(our_qemu_processes().empty());
}

}  // namespace
}  // namespace airlock::testing
