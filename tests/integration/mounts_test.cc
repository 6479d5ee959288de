// Read-only shares (--mount ro:HOST:GUEST) end to end: a host directory the
// program can read and never write, through which nothing outside it is
// reachable (symlinks out, "..", hard links to private files, device nodes,
// FIFOs), and mounts refused with a reason when they may not be made.

#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <fstream>

#include "common/io.h"
#include "support/cli_fixture.h"
#include "support/test_daemon.h"

namespace airlock::testing {
namespace {

namespace fs = std::filesystem;

// A share with the escapes a hostile or careless operator could leave in it,
// and a private file beside it.
class Mounts : public Cli {
 protected:
  void SetUp() override {
    Cli::SetUp();
    base_ = fs::temp_directory_path() / ("airlock-share-" + std::to_string(::getpid()));
    fs::remove_all(base_);
    share_ = base_ / "share";
    fs::create_directories(share_ / "sub");
    fs::permissions(base_, fs::perms(0755));
    fs::permissions(share_, fs::perms(0755));
    write_file((share_ / "data.txt").string(), "hello from the host\n", 0644);
    write_file((share_ / "sub" / "nested.txt").string(), "nested\n", 0644);
    write_file((base_ / "beside.txt").string(), "beside the share\n", 0644);
    write_file((base_ / "private.txt").string(), "private to the host\n", 0600);
    fs::create_symlink("/etc/hostname", share_ / "absolute_link");
    fs::create_symlink("../beside.txt", share_ / "relative_link");
    fs::create_hard_link(base_ / "private.txt", share_ / "hard_link");
    ASSERT_EQ(::mkfifo((share_ / "fifo").c_str(), 0644), 0);
    ASSERT_EQ(::mknod((share_ / "null_device").c_str(), S_IFCHR | 0666, makedev(1, 3)), 0);
  }
  void TearDown() override {
    fs::remove_all(base_);
    Cli::TearDown();
  }

  // Everything in the share, with sizes: the host's view, to compare after a run.
  std::string host_listing() const {
    std::string listing;
    for (const auto& entry : fs::recursive_directory_iterator(share_)) {
      listing +=
          entry.path().string() + (entry.is_regular_file() ? " " + std::to_string(entry.file_size()) : "");
      listing += "\n";
    }
    return listing;
  }

  fs::path base_;
  fs::path share_;
};

constexpr const char* kProbe = R"PY(
import os
def attempt(label, action):
    try:
        print(label, action())
    except OSError as error:
        print(label, "refused:", type(error).__name__)
attempt("read:", lambda: open("/data/data.txt").read().strip())
attempt("nested:", lambda: open("/data/sub/nested.txt").read().strip())
attempt("listing:", lambda: sorted(os.listdir("/data")))
attempt("create:", lambda: open("/data/new.txt", "w"))
attempt("overwrite:", lambda: open("/data/data.txt", "a"))
attempt("mkdir:", lambda: os.mkdir("/data/newdir"))
attempt("unlink:", lambda: os.unlink("/data/data.txt"))
attempt("chmod:", lambda: os.chmod("/data/data.txt", 0o777))
attempt("absolute link:", lambda: open("/data/absolute_link").read().strip())
attempt("relative link:", lambda: open("/data/relative_link").read())
attempt("dotdot:", lambda: "beside.txt" in os.listdir("/data/.."))
attempt("hard link:", lambda: open("/data/hard_link").read())
attempt("device:", lambda: open("/data/null_device", "rb").read(1))
attempt("fifo:", lambda: os.read(os.open("/data/fifo", os.O_RDONLY | os.O_NONBLOCK), 10))
attempt("mounted:", lambda: [line.split()[3].split(",")[0] for line in open("/proc/mounts") if " /data " in line])
)PY";

TEST_F(Mounts, ShareIsReadableNeverWritableAndLeadsNowhereElse) {
  const std::string before = host_listing();
  auto result = airlock({"run", "--lang", "python", "--mount", "ro:" + share_.string() + ":/data", kProbe});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(
      result.out,
      "read: hello from the host\n"
      "nested: nested\n"
      "listing: ['absolute_link', 'data.txt', 'fifo', 'hard_link', 'null_device', 'relative_link', 'sub']\n"
      "create: refused: OSError\n"
      "overwrite: refused: OSError\n"
      "mkdir: refused: OSError\n"
      "unlink: refused: OSError\n"
      "chmod: refused: OSError\n"
      "absolute link: sandbox\n"  // the guest's /etc/hostname, not the host's
      "relative link: refused: FileNotFoundError\n"
      "dotdot: False\n"
      "hard link: refused: PermissionError\n"
      "device: refused: PermissionError\n"
      "fifo: b''\n"
      "mounted: ['ro']\n");
  EXPECT_EQ(host_listing(), before) << "the share changed on the host";
}

TEST_F(Mounts, TheSameShareTwiceUsesItsTemplate) {
  const std::string mount = "ro:" + share_.string() + ":/srv/input";
  auto first = airlock_json({"run", "--lang", "shell", "--mount", mount, "cat /srv/input/data.txt"});
  auto second =
      airlock_json({"run", "--lang", "shell", "--mount", mount, "wc -c < /srv/input/sub/nested.txt"});
  EXPECT_EQ(first["stdout"], "hello from the host\n") << first.dump();
  EXPECT_EQ(second["stdout"], "7\n") << second.dump();
  EXPECT_EQ(second["from_snapshot"], true) << "a share must not keep a profile from its snapshot";
}

TEST_F(Mounts, SharesOfOtherDirectoriesAtTheSamePlaceShareATemplate) {
  const fs::path other = base_ / "other";
  fs::create_directories(other);
  fs::permissions(other, fs::perms(0755));
  write_file((other / "data.txt").string(), "the other directory\n", 0644);
  auto first = airlock_json(
      {"run", "--lang", "shell", "--mount", "ro:" + share_.string() + ":/srv/in", "cat /srv/in/data.txt"});
  auto second = airlock_json(
      {"run", "--lang", "shell", "--mount", "ro:" + other.string() + ":/srv/in", "cat /srv/in/data.txt"});
  EXPECT_EQ(first["stdout"], "hello from the host\n") << first.dump();
  EXPECT_EQ(second["stdout"], "the other directory\n") << second.dump();
  EXPECT_EQ(second["from_snapshot"], true) << "the host path made a template of its own";
}

TEST_F(Mounts, BadMountsAreRefusedNamingWhy) {
  auto expect_refused = [this](const std::string& mount, const std::string& needle) {
    auto result = airlock({"run", "--lang", "shell", "--mount", mount, "true"});
    EXPECT_EQ(result.exit_code, 125) << mount;
    EXPECT_NE(result.err.find(needle), std::string::npos) << mount << ": " << result.err;
  };
  expect_refused("rw:" + share_.string() + ":/data", "rw mounts are not supported");
  expect_refused("ro:" + share_.string() + ":/etc", "inside /etc, which belongs to the guest system");
  expect_refused("ro:" + share_.string() + ":/data/../etc", "contains '..'");
  expect_refused("ro:relative:/data", "is not absolute");
  expect_refused("ro:" + (base_ / "missing").string() + ":/data", "No such file or directory");
  expect_refused("ro:" + (share_ / "data.txt").string() + ":/data", "is not a directory");
  expect_refused(share_.string() + ":/data", "is not of the form ro:HOST_DIR:GUEST_DIR");
  fs::permissions(share_, fs::perms(0700));
  expect_refused("ro:" + share_.string() + ":/data", "is not readable by others");
}

TEST(MountsThroughTheDaemon, OnlyInsideTheOperatorsRoots) {
  const fs::path dir = fs::temp_directory_path() / ("airlock-md-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "roots" / "allowed");
  fs::create_directories(dir / "elsewhere");
  fs::permissions(dir, fs::perms(0755));
  write_file((dir / "roots" / "allowed" / "in.txt").string(), "inside a root\n", 0644);
  {
    TestDaemon daemon(dir);
    ASSERT_TRUE(daemon.start({"--pool-size", "0", "--mount-root", (dir / "roots").string()}));
    engine::RunRequest inside_request = run_request("shell", "cat /in/in.txt");
    inside_request.mounts = {engine::parse_mount("ro:" + (dir / "roots" / "allowed").string() + ":/in")};
    auto inside = daemon.run(inside_request);
    EXPECT_EQ(inside.status, 200) << inside.body;
    EXPECT_NE(inside.body.find("inside a root"), std::string::npos) << inside.body;
    engine::RunRequest outside_request = run_request("shell", "true");
    outside_request.mounts = {engine::parse_mount("ro:" + (dir / "elsewhere").string() + ":/x")};
    auto outside = daemon.run(outside_request);
    EXPECT_EQ(outside.status, 400) << outside.body;
    EXPECT_NE(outside.body.find("is outside this airlockd's mount roots"), std::string::npos) << outside.body;
    auto status = daemon.stop();
    EXPECT_TRUE(status && status->exit_code == 0);
  }
  EXPECT_TRUE(qemu_processes(dir.string() + "/").empty());
  fs::remove_all(dir);
}

}  // namespace
}  // namespace airlock::testing
