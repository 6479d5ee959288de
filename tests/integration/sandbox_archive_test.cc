// Directories in and out of a live sandbox as tar streams (format=tar),
// through a real airlockd and the CLI, and the archives that must be refused.

#include <archive.h>
#include <archive_entry.h>
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "common/child_process.h"
#include "common/io.h"
#include "engine/sandbox_json.h"
#include "support/airlock_cli.h"
#include "support/daemon_fixture.h"
#include "support/test_daemon.h"

namespace airlock::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct TarEntry {
  std::string name;
  mode_t type = AE_IFREG;
  std::string content;  // a file's bytes; a symlink's or hard link's target
  unsigned mode = 0644;
  int64_t mtime = 1'600'000'000;
};

la_ssize_t append_to(archive*, void* out, const void* data, size_t size) {
  static_cast<std::string*>(out)->append(static_cast<const char*>(data), size);
  return static_cast<la_ssize_t>(size);
}

// An archive written entry by entry, as a hostile client could send it.
std::string make_tar(const std::vector<TarEntry>& entries, bool gzip = false) {
  std::string out;
  archive* writer = archive_write_new();
  archive_write_set_format_pax_restricted(writer);
  if (gzip) archive_write_add_filter_gzip(writer);
  archive_write_open(writer, &out, nullptr, append_to, nullptr);
  for (const auto& spec : entries) {
    archive_entry* entry = archive_entry_new();
    archive_entry_set_pathname(entry, spec.name.c_str());
    archive_entry_set_perm(entry, spec.mode);
    archive_entry_set_mtime(entry, spec.mtime, 0);
    if (spec.type == 0) {
      archive_entry_set_filetype(entry, AE_IFREG);
      archive_entry_set_hardlink(entry, spec.content.c_str());
    } else {
      archive_entry_set_filetype(entry, spec.type);
    }
    if (spec.type == AE_IFLNK) archive_entry_set_symlink(entry, spec.content.c_str());
    if (spec.type == AE_IFREG) archive_entry_set_size(entry, static_cast<la_int64_t>(spec.content.size()));
    archive_write_header(writer, entry);
    if (spec.type == AE_IFREG) archive_write_data(writer, spec.content.data(), spec.content.size());
    archive_entry_free(entry);
  }
  archive_write_close(writer);
  archive_write_free(writer);
  return out;
}

struct ReadEntry {
  mode_t type = 0;
  std::string content;
  unsigned mode = 0;
};

// name -> entry, of an archive the daemon sent.
std::map<std::string, ReadEntry> read_tar(const std::string& data) {
  std::map<std::string, ReadEntry> entries;
  archive* reader = archive_read_new();
  archive_read_support_format_tar(reader);
  EXPECT_EQ(archive_read_open_memory(reader, data.data(), data.size()), ARCHIVE_OK);
  archive_entry* entry = nullptr;
  int status = ARCHIVE_OK;
  while ((status = archive_read_next_header(reader, &entry)) == ARCHIVE_OK) {
    ReadEntry& read = entries[archive_entry_pathname(entry)];
    read.type = archive_entry_filetype(entry);
    read.mode = archive_entry_perm(entry);
    if (read.type == AE_IFLNK) read.content = archive_entry_symlink(entry);
    char buffer[65536];
    la_ssize_t n = 0;
    while ((n = archive_read_data(reader, buffer, sizeof buffer)) > 0) read.content.append(buffer, n);
  }
  EXPECT_EQ(status, ARCHIVE_EOF) << "the archive did not end whole: " << archive_error_string(reader);
  archive_read_free(reader);
  return entries;
}

std::string random_bytes(size_t size) {
  std::string content(size, '\0');
  uint64_t state = 0x9E3779B97F4A7C15ULL;
  for (size_t i = 0; i + 8 <= content.size(); i += 8) {
    state ^= state << 13, state ^= state >> 7, state ^= state << 17;
    std::memcpy(&content[i], &state, 8);
  }
  return content;
}

class SandboxArchives : public DaemonFixture {
 protected:
  void SetUp() override {
    DaemonFixture::SetUp();
    ASSERT_TRUE(daemon_->start({"--pool-size", "0"}));
    const auto reply = daemon_->post("/v1/sandboxes", R"({"language":"shell","disk_mb":256})");
    ASSERT_EQ(reply.status, 201) << reply.body;
    id_ = json::parse(reply.body)["id"];
    files_ = "http://airlockd/v1/sandboxes/" + id_ + "/files?format=tar&path=";
  }

  HttpReply put_tar(const std::string& directory, const std::string& archive, bool chunked = false) {
    const fs::path body = dir_ / "upload.tar";
    write_file(body, archive);
    std::vector<std::string> args = {"-X",
                                     "PUT",
                                     "-H",
                                     "Content-Type: application/x-tar",
                                     "--data-binary",
                                     "@" + body.string(),
                                     files_ + directory};
    if (chunked) args.insert(args.begin(), {"-H", "Transfer-Encoding: chunked"});
    return daemon_->request(args);
  }

  // What a shell in the sandbox prints.
  std::string sh(const std::string& script) {
    engine::ExecRequest request;
    request.argv = {"sh", "-c", script};
    const auto reply = daemon_->post("/v1/sandboxes/" + id_ + "/execs", engine::to_json(request).dump());
    EXPECT_EQ(reply.status, 200) << reply.body;
    return json::parse(reply.body)["stdout"];
  }

  std::string id_;
  std::string files_;
};

TEST_F(SandboxArchives, ATreeGoesInAndComesOutWithItsModesTimesAndSymlinks) {
  const std::string big = random_bytes(3 << 20);
  const std::string archive = make_tar({
      {"./", AE_IFDIR, "", 0755},
      {"./src/", AE_IFDIR, "", 0750},
      {"./src/main.py", AE_IFREG, "print(42)\n", 0640, 1'500'000'000},
      {"./src/run.sh", AE_IFREG, "#!/bin/sh\necho ran\n", 0755},
      {"./data/big.bin", AE_IFREG, big, 0600},  // its directory comes from no entry of its own
      {"./empty/", AE_IFDIR, "", 0700},
      {"./latest", AE_IFLNK, "src/main.py"},
      {"./outside", AE_IFLNK, "/etc/passwd"},  // made as a symlink; never followed by us
  });
  const auto put = put_tar("/home/sandbox/proj", archive, /*chunked=*/true);
  ASSERT_EQ(put.status, 200) << put.body;
  const json counts = json::parse(put.body);
  EXPECT_EQ(counts["files"], 3);
  EXPECT_EQ(counts["directories"], 3);
  EXPECT_EQ(counts["symlinks"], 2);
  EXPECT_EQ(counts["bytes"], big.size() + 10 + 19);

  write_file(dir_ / "big.bin", big);
  const std::string md5 = run_command({"sh", "-c", "md5sum < " + (dir_ / "big.bin").string()},
                                      {"PATH=/usr/bin:/bin"}, std::chrono::seconds(30))
                              .output;
  EXPECT_EQ(sh("cd /home/sandbox/proj && stat -c '%a %U %n' src src/main.py src/run.sh data/big.bin empty && "
               "stat -c %Y src/main.py && readlink latest outside && ./src/run.sh && md5sum < data/big.bin"),
            "750 sandbox src\n640 sandbox src/main.py\n755 sandbox src/run.sh\n600 sandbox data/big.bin\n"
            "700 sandbox empty\n1500000000\nsrc/main.py\n/etc/passwd\nran\n" +
                md5);

  // Out again, a socket and a FIFO of the guest's left out.
  sh("mkfifo /home/sandbox/proj/fifo");
  const auto got = daemon_->get("/v1/sandboxes/" + id_ + "/files?format=tar&path=/home/sandbox/proj");
  ASSERT_EQ(got.status, 200) << got.body.substr(0, 300);
  const auto entries = read_tar(got.body);
  ASSERT_EQ(entries.count("./src/main.py"), 1u) << got.body.size();
  EXPECT_EQ(entries.at("./src/main.py").content, "print(42)\n");
  EXPECT_EQ(entries.at("./src/main.py").mode, 0640u);
  EXPECT_EQ(entries.at("./src/").type, static_cast<mode_t>(AE_IFDIR));
  EXPECT_EQ(entries.at("./src/").mode, 0750u);
  EXPECT_TRUE(entries.at("./data/big.bin").content == big) << "the big file came back different";
  EXPECT_EQ(entries.at("./latest").type, static_cast<mode_t>(AE_IFLNK));
  EXPECT_EQ(entries.at("./latest").content, "src/main.py");
  EXPECT_EQ(entries.at("./outside").content, "/etc/passwd") << "a symlink was followed";
  EXPECT_EQ(entries.count("./fifo"), 0u);
  EXPECT_EQ(entries.count("./"), 1u);
  EXPECT_EQ(entries.size(), 9u);

  // A directory that is there keeps its mode; an archive without "./" does not change it.
  sh("mkdir -m 700 /home/sandbox/keep");
  ASSERT_EQ(put_tar("/home/sandbox/keep", make_tar({{"a", AE_IFREG, "a"}})).status, 200);
  EXPECT_EQ(sh("stat -c %a /home/sandbox/keep"), "700\n");

  // One file as an archive of one entry, a gzip archive in, and a path described.
  const auto one = read_tar(
      daemon_->get("/v1/sandboxes/" + id_ + "/files?format=tar&path=/home/sandbox/proj/src/run.sh").body);
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one.begin()->first, "run.sh");
  ASSERT_EQ(put_tar("/home/sandbox/gz", make_tar({{"z.txt", AE_IFREG, "zipped"}}, /*gzip=*/true)).status,
            200);
  EXPECT_EQ(sh("cat /home/sandbox/gz/z.txt"), "zipped");
  const json link =
      json::parse(daemon_->get("/v1/sandboxes/" + id_ + "/stat?path=/home/sandbox/proj/latest").body);
  EXPECT_EQ(link["type"], "symlink");
  EXPECT_EQ(link["target"], "src/main.py");
  EXPECT_EQ(json::parse(daemon_->get("/v1/sandboxes/" + id_ + "/stat?path=/").body)["type"], "directory");
  EXPECT_EQ(daemon_->get("/v1/sandboxes/" + id_ + "/stat?path=/home/sandbox/none").status, 404);
}

TEST_F(SandboxArchives, HostileArchivesAreRefusedAndReachNothing) {
  sh("mkdir -p /home/sandbox/t && ln -s /tmp /home/sandbox/t/planted");
  struct Case {
    std::vector<TarEntry> entries;
    int status;
    std::string says;
  };
  const std::vector<Case> cases = {
      {{{"/tmp/abs", AE_IFREG, "x"}}, 400, "'/tmp/abs' has an absolute name"},
      {{{"a/../../../tmp/up", AE_IFREG, "x"}}, 400, "has a '..'"},
      {{{"ok", AE_IFREG, "x"}, {"hard", 0, "/etc/shadow"}}, 400, "'hard' is a hard link"},
      {{{"fifo", AE_IFIFO, ""}}, 400, "'fifo' is a FIFO"},
      {{{"dev", AE_IFCHR, ""}}, 400, "'dev' is a character device"},
      // Through a symlink an exec planted, and through one the archive itself made.
      {{{"planted/x", AE_IFREG, "x"}}, 404, "planted/x"},
      {{{"self", AE_IFLNK, "/tmp"}, {"self/y", AE_IFREG, "y"}}, 404, "self/y"},
      {{{"planted", AE_IFDIR, ""}}, 409, "planted"},
  };
  for (const auto& c : cases) {
    const auto reply = put_tar("/home/sandbox/t", make_tar(c.entries));
    EXPECT_EQ(reply.status, c.status) << c.says << ": " << reply.body;
    EXPECT_NE(reply.body.find(c.says), std::string::npos) << reply.body;
  }
  EXPECT_EQ(sh("for f in abs up x y; do test -e /tmp/$f && echo leaked $f; done; "
               "test -L /home/sandbox/t/planted && echo still-a-link"),
            "still-a-link\n")
      << "an archive reached outside its directory";
  const auto garbage = put_tar("/home/sandbox/t", std::string(5000, 'x'));
  EXPECT_EQ(garbage.status, 400);
  EXPECT_NE(garbage.body.find("not a tar archive"), std::string::npos) << garbage.body;
  EXPECT_EQ(put_tar("/etc/mine", make_tar({{"f", AE_IFREG, "x"}})).status, 403);
  EXPECT_EQ(put_tar("/home/sandbox/t/planted", make_tar({{"f", AE_IFREG, "x"}})).status, 409)
      << "extracted into a symlink an exec planted";
  EXPECT_EQ(put_tar("/home/sandbox/../etc", make_tar({{"f", AE_IFREG, "x"}})).status, 400);
  EXPECT_EQ(daemon_->get("/v1/sandboxes/" + id_ + "/files?format=zip&path=/home").status, 400);
  EXPECT_EQ(daemon_->get("/v1/sandboxes/" + id_ + "/files?format=tar&path=/home/sandbox/none").status, 404);
}

TEST_F(SandboxArchives, TheCliCopiesDirectoriesBothWaysAsDockerCpDoes) {
  CliOptions options;
  options.extra_env = {"AIRLOCK_SOCKET=" + daemon_->socket()};
  const fs::path tree = dir_ / "tree";
  fs::create_directories(tree / "sub" / "deeper");
  write_file(tree / "a.txt", "alpha\n");
  write_file(tree / "sub" / "deeper" / "b.bin", random_bytes(1 << 20));
  fs::create_symlink("a.txt", tree / "link");
  fs::permissions(tree / "sub", fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec);

  // Into a path that does not exist: it becomes the copy.
  auto up = run_cli({"cp", tree.string(), id_ + ":/home/sandbox/copy"}, options);
  ASSERT_EQ(up.exit_code, 0) << up.err;
  EXPECT_EQ(sh("cd /home/sandbox/copy && cat a.txt && readlink link && stat -c %a sub"),
            "alpha\na.txt\n750\n");
  // Into a directory that exists: the copy goes in under its own name.
  ASSERT_EQ(run_cli({"cp", tree.string(), id_ + ":/home/sandbox"}, options).exit_code, 0);
  EXPECT_EQ(sh("cat /home/sandbox/tree/a.txt"), "alpha\n");
  ASSERT_EQ(run_cli({"cp", (tree / "a.txt").string(), id_ + ":/home/sandbox/copy/sub"}, options).exit_code,
            0);
  EXPECT_EQ(sh("cat /home/sandbox/copy/sub/a.txt"), "alpha\n");

  const fs::path back = dir_ / "back";
  auto down = run_cli({"cp", id_ + ":/home/sandbox/copy", back.string()}, options);
  ASSERT_EQ(down.exit_code, 0) << down.err;
  EXPECT_EQ(run_command({"diff", "-r", "--no-dereference", tree.string(), back.string()},
                        {"PATH=/usr/bin:/bin"}, std::chrono::seconds(30))
                .output,
            "Only in " + back.string() + "/sub: a.txt\n");
  EXPECT_EQ(fs::read_symlink(back / "link"), "a.txt");
  fs::create_directories(dir_ / "into");
  ASSERT_EQ(run_cli({"cp", id_ + ":/home/sandbox/copy/link", (dir_ / "into").string()}, options).exit_code,
            0);
  EXPECT_EQ(fs::read_symlink(dir_ / "into" / "link"), "a.txt") << "a symlink comes out as a symlink";
  EXPECT_FALSE(fs::exists(dir_ / "into" / "link.airlock-partial"));

  auto missing = run_cli({"cp", id_ + ":/home/sandbox/none", (dir_ / "none").string()}, options);
  EXPECT_EQ(missing.exit_code, 125);
  EXPECT_FALSE(fs::exists(dir_ / "none"));
  EXPECT_FALSE(fs::exists(dir_ / "none.airlock-partial"));
}

}  // namespace
}  // namespace airlock::testing
