#include "guest/file_writer.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "common/error.h"
#include "common/temp_dir.h"
#include "protocol/guest_path.h"

namespace airlock::guest {
namespace {

namespace fs = std::filesystem;
using protocol::split_guest_path;

TEST(GuestPath, NormalisesAbsolutePaths) {
  EXPECT_EQ(split_guest_path("/home/sandbox/main.py"),
            (std::vector<std::string>{"home", "sandbox", "main.py"}));
  EXPECT_EQ(split_guest_path("//a/./b//c/"), (std::vector<std::string>{"a", "b", "c"}));
}

TEST(GuestPath, RejectsWhatCouldLeaveTheRoot) {
  const std::vector<std::string> hostile = {
      "",  "relative/x", "/a/../etc/passwd",      "/..",
      "/", "/./.",       std::string("/a\0b", 4), "/" + std::string(5000, 'a')};
  for (const std::string& path : hostile) {
    try {
      split_guest_path(path);
      ADD_FAILURE() << "accepted '" << path << "'";
    } catch (const Error& error) {
      EXPECT_EQ(error.code(), ErrorCode::invalid_argument) << path;
    }
  }
}

TEST(GuestPath, NeverFollowsASymlinkOrTruncatesAHardLink) {
  TempDir root = TempDir::create(fs::temp_directory_path().string(), "writer-");
  const fs::path outside = fs::path(root.path()) / "outside";
  fs::create_directories(fs::path(root.path()) / "root" / "home");
  fs::create_directories(outside);
  const std::string root_dir = (fs::path(root.path()) / "root").string();
  // A symlinked directory and a symlinked file, both pointing out of the root.
  fs::create_directory_symlink(outside, fs::path(root_dir) / "home" / "escape");
  fs::create_symlink(outside / "target", fs::path(root_dir) / "home" / "link.py");
  EXPECT_THROW(create_file_in_root(root_dir, "/home/escape/x.py", 0644, ::getuid(), ::getgid()), Error);
  EXPECT_THROW(create_file_in_root(root_dir, "/home/link.py", 0644, ::getuid(), ::getgid()), Error);
  EXPECT_FALSE(fs::exists(outside / "x.py"));
  EXPECT_FALSE(fs::exists(outside / "target"));
  // A hard link to a file elsewhere is refused rather than truncated.
  const fs::path victim = outside / "victim";
  { std::ofstream(victim) << "keep"; }
  fs::create_hard_link(victim, fs::path(root_dir) / "home" / "hard.py");
  EXPECT_THROW(create_file_in_root(root_dir, "/home/hard.py", 0644, ::getuid(), ::getgid()), Error);
  EXPECT_EQ(fs::file_size(victim), 4u);
  // A FIFO is refused at once, not waited on.
  ASSERT_EQ(::mkfifo((fs::path(root_dir) / "home" / "fifo.py").c_str(), 0666), 0);
  EXPECT_THROW(create_file_in_root(root_dir, "/home/fifo.py", 0644, ::getuid(), ::getgid()), Error);
  // And a plain new file, with its parent made, works.
  EXPECT_TRUE(create_file_in_root(root_dir, "/home/sandbox/main.py", 0644, ::getuid(), ::getgid()));
  EXPECT_TRUE(fs::is_regular_file(fs::path(root_dir) / "home" / "sandbox" / "main.py"));
}

}  // namespace
}  // namespace airlock::guest
