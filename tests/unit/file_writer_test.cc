#include "guest/file_writer.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "common/error.h"
#include "common/temp_dir.h"
#include "engine/mux_archive.h"
#include "protocol/guest_path.h"

namespace airlock::guest {
namespace {

namespace fs = std::filesystem;
using protocol::split_guest_path;

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

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
  EXPECT_THROW(PendingFile::create(root_dir, "/home/escape/x.py", 0644, ::getuid(), ::getgid()), Error);
  EXPECT_THROW(PendingFile::create(root_dir, "/home/link.py", 0644, ::getuid(), ::getgid()), Error);
  EXPECT_FALSE(fs::exists(outside / "x.py"));
  EXPECT_FALSE(fs::exists(outside / "target"));
  // A hard link to a file elsewhere is refused rather than truncated.
  const fs::path victim = outside / "victim";
  { std::ofstream(victim) << "keep"; }
  fs::create_hard_link(victim, fs::path(root_dir) / "home" / "hard.py");
  EXPECT_THROW(PendingFile::create(root_dir, "/home/hard.py", 0644, ::getuid(), ::getgid()), Error);
  EXPECT_EQ(fs::file_size(victim), 4u);
  // A FIFO is refused at once, not waited on.
  ASSERT_EQ(::mkfifo((fs::path(root_dir) / "home" / "fifo.py").c_str(), 0666), 0);
  EXPECT_THROW(PendingFile::create(root_dir, "/home/fifo.py", 0644, ::getuid(), ::getgid()), Error);
  // And a plain new file, with its parent made, works.
  PendingFile made = PendingFile::create(root_dir, "/home/sandbox/main.py", 0644, ::getuid(), ::getgid());
  EXPECT_GE(made.fd(), 0);
  made.commit();
  EXPECT_TRUE(fs::is_regular_file(fs::path(root_dir) / "home" / "sandbox" / "main.py"));
}

TEST(GuestPath, AFileIsPutInPlaceWholeOrNotAtAll) {
  TempDir root = TempDir::create(fs::temp_directory_path().string(), "pending-");
  const fs::path home = fs::path(root.path()) / "home";
  fs::create_directories(home);
  { std::ofstream(home / "f") << "old"; }
  {
    PendingFile pending = PendingFile::create(root.path(), "/home/f", 0600, ::getuid(), ::getgid());
    ASSERT_EQ(::write(pending.fd(), "new", 3), 3);
  }  // never committed: an upload that was cancelled
  EXPECT_EQ(read_text(home / "f"), "old");
  EXPECT_EQ(std::distance(fs::directory_iterator(home), fs::directory_iterator()), 1)
      << "a temporary file was left";
  PendingFile pending = PendingFile::create(root.path(), "/home/f", 0600, ::getuid(), ::getgid());
  ASSERT_EQ(::write(pending.fd(), "new", 3), 3);
  EXPECT_EQ(read_text(home / "f"), "old") << "the file changed before it was whole";
  pending.commit();
  EXPECT_EQ(read_text(home / "f"), "new");
  EXPECT_EQ(fs::status(home / "f").permissions(), fs::perms::owner_read | fs::perms::owner_write);
  fs::create_symlink("f", home / "link");
  EXPECT_THROW(PendingFile::create(root.path(), "/home/link", 0644, ::getuid(), ::getgid()), Error);
  EXPECT_EQ(std::distance(fs::directory_iterator(home), fs::directory_iterator()), 2);
}

TEST(GuestPath, ADirectoryMayBeTheRoot) {
  EXPECT_TRUE(protocol::split_guest_directory("/").empty());
  EXPECT_TRUE(protocol::split_guest_directory("/./").empty());
  EXPECT_THROW(protocol::split_guest_directory("/a/.."), Error);
}

TEST(GuestPath, ArchiveEntriesStayUnderTheirDirectory) {
  using engine::archive_entry_path;
  EXPECT_EQ(archive_entry_path("/home/sandbox/d", "./a/b.txt"), "/home/sandbox/d/a/b.txt");
  EXPECT_EQ(archive_entry_path("/home/sandbox/d", "a//./b/"), "/home/sandbox/d/a/b");
  EXPECT_EQ(archive_entry_path("/home/sandbox/d", "./"), "/home/sandbox/d");
  EXPECT_EQ(archive_entry_path("/", "etc-copy/x"), "/etc-copy/x");
  for (const std::string name : {"", "/etc/passwd", "../x", "a/../../x", "./.."}) {
    try {
      archive_entry_path("/home/sandbox/d", name);
      ADD_FAILURE() << "accepted '" << name << "'";
    } catch (const Error& error) {
      EXPECT_EQ(error.code(), ErrorCode::invalid_argument) << name;
      if (!name.empty()) {
        EXPECT_NE(std::string(error.what()).find("'" + name + "'"), std::string::npos) << error.what();
      }
    }
  }
}

TEST(GuestPath, NodesAreMadeWithoutFollowingASymlink) {
  TempDir root = TempDir::create(fs::temp_directory_path().string(), "nodes-");
  const fs::path outside = fs::path(root.path()) / "outside";
  const fs::path inside = fs::path(root.path()) / "root";
  fs::create_directories(inside / "home");
  fs::create_directories(outside);
  fs::create_directory_symlink(outside, inside / "home" / "escape");
  const uid_t uid = ::getuid();
  const gid_t gid = ::getgid();
  make_node_in_root(inside.string(), "/home/d/e", "directory", 0750, "", uid, gid);
  EXPECT_EQ(fs::status(inside / "home" / "d" / "e").permissions(),
            fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec);
  make_node_in_root(inside.string(), "/home/d/e", "directory", 0700, "", uid, gid);  // kept, given the mode
  EXPECT_EQ(fs::status(inside / "home" / "d" / "e").permissions(), fs::perms::owner_all);
  EXPECT_THROW(make_node_in_root(inside.string(), "/home/escape/x", "directory", 0755, "", uid, gid), Error);
  EXPECT_THROW(make_node_in_root(inside.string(), "/home/escape", "directory", 0755, "", uid, gid), Error);
  EXPECT_THROW(make_node_in_root(inside.string(), "/home/escape/l", "symlink", 0777, "/", uid, gid), Error);
  EXPECT_TRUE(fs::is_empty(outside));
  make_node_in_root(inside.string(), "/home/l", "symlink", 0777, "/etc/passwd", uid, gid);
  make_node_in_root(inside.string(), "/home/l", "symlink", 0777, "d", uid, gid);  // replaced
  EXPECT_EQ(fs::read_symlink(inside / "home" / "l"), "d");
  { std::ofstream(inside / "home" / "file") << "x"; }
  EXPECT_THROW(make_node_in_root(inside.string(), "/home/file", "symlink", 0777, "d", uid, gid), Error);
  EXPECT_THROW(make_node_in_root(inside.string(), "/home/file", "directory", 0755, "", uid, gid), Error);
  EXPECT_TRUE(fs::is_regular_file(inside / "home" / "file"));
}

}  // namespace
}  // namespace airlock::guest
