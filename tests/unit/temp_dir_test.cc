#include "common/temp_dir.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

#include "common/io.h"

namespace airlock {
namespace {

namespace fs = std::filesystem;

std::string scratch_parent() {
  return fs::temp_directory_path().string() + "/airlock-unit-" + std::to_string(::getpid());
}

TEST(TempDir, IsRemovedWithItsContents) {
  std::string path;
  {
    TempDir dir = TempDir::create(scratch_parent(), "t-");
    path = dir.path();
    write_file(dir.file("x"), "data");
    fs::create_directories(dir.file("a/b"));
    EXPECT_TRUE(fs::exists(path));
  }
  EXPECT_FALSE(fs::exists(path));
  fs::remove_all(scratch_parent());
}

// Without root, a dead owner's directory holding read-only directories (a
// killed image import's layers) is still reaped whole.
TEST(TempDir, ReapRemovesReadOnlyDirectoriesWithoutRoot) {
  const std::string parent = scratch_parent() + "-nobody";
  fs::create_directories(parent);
  ::chmod(parent.c_str(), 0777);
  auto as_nobody = [](auto body) {
    pid_t pid = ::fork();
    if (pid == 0) {
      if (::geteuid() == 0 && (::setgid(65534) < 0 || ::setuid(65534) < 0)) ::_exit(2);
      ::_exit(body());
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  };
  // Dies as on SIGKILL: no destructor runs.
  EXPECT_EQ(as_nobody([&] {
              TempDir orphan = TempDir::create(parent, "import-");
              fs::create_directories(orphan.file("root/locked/deeper"));
              write_file(orphan.file("root/locked/deeper/file"), "x");
              ::chmod(orphan.file("root/locked/deeper").c_str(), 0555);
              ::chmod(orphan.file("root/locked").c_str(), 0000);
              ::_exit(fs::exists(orphan.file(".lock")) ? 0 : 1);  // before its destructor
              return 1;
            }),
            0);
  EXPECT_EQ(as_nobody([&] {
              const int reaped = reap_stale_dirs(parent, "import-");
              return reaped == 1 && fs::is_empty(parent) ? 0 : 10 + reaped;
            }),
            0);
  fs::remove_all(parent);
}

TEST(TempDir, ReapRemovesOnlyDirectoriesWhoseOwnerDied) {
  const std::string parent = scratch_parent();
  TempDir alive = TempDir::create(parent, "run-");
  // A child creates a directory and dies without cleaning up, as on SIGKILL.
  pid_t pid = ::fork();
  if (pid == 0) {
    TempDir orphan = TempDir::create(parent, "run-");
    write_file(orphan.file("overlay"), "x");
    ::_exit(0);  // skips destructors
  }
  int status;
  ::waitpid(pid, &status, 0);
  int before = 0;
  for (auto& entry : fs::directory_iterator(parent)) before += entry.is_directory();
  EXPECT_EQ(before, 2);
  EXPECT_EQ(reap_stale_dirs(parent, "run-"), 1);
  EXPECT_TRUE(fs::exists(alive.path()));
  alive.remove();
  fs::remove_all(parent);
}

}  // namespace
}  // namespace airlock
