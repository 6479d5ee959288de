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
