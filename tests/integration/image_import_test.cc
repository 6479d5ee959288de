// An image a user brings (issue 15): made into a real layered OCI image by
// the test (the built shell image's files as the base layer, then layers
// with whiteouts, an opaque directory, links, owners and a setuid bit),
// imported with `airlock image import`, and booted.

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <optional>
#include <string>

#include "common/child_process.h"
#include "common/temp_dir.h"
#include "engine/images.h"
#include "engine/paths.h"
#include "support/cli_fixture.h"
#include "support/image_archives.h"
#include "support/test_daemon.h"

namespace airlock::testing {
namespace {

namespace fs = std::filesystem;

constexpr const char* kToolScript = R"SH(
mytool --help; mytool2; mt
echo "$GREETING"
command -v jq || echo no-jq
ls /etc/airlock-test | tr '\n' ' '; echo
stat -c '%a %u' /usr/local/bin/suid /srv/mine
id -un
)SH";

class ImportedImage : public Cli {
 protected:
  void SetUp() override {
    Cli::SetUp();
    work_ = TempDir::create("/tmp", "airlock-import-it-");
    name_ = "it-tools-" + std::to_string(::getpid());
  }
  void TearDown() override {
    airlock({"image", "rm", name_});  // gone already when the test got that far
    work_.remove();
    Cli::TearDown();
  }

  // The layers: the shell image's files, then ours.
  ImageSpec make_image() {
    auto catalog = engine::ImageCatalog::load(engine::find_manifest(""));
    const std::string base = work_.file("base");
    fs::create_directory(base);
    auto dumped = run_command({"/sbin/debugfs", "-R", "rdump / " + base, catalog.image("shell").path}, {},
                              std::chrono::seconds(120));
    EXPECT_EQ(dumped.status.exit_code, 0) << dumped.output;
    auto tarred =
        run_command({"tar", "-C", base, "-czf", work_.file("1.tar.gz"), "."}, {}, std::chrono::seconds(300));
    EXPECT_EQ(tarred.status.exit_code, 0) << tarred.output;
    fs::remove_all(base);
    TarWriter(work_.file("2.tar"))
        .dir("etc/airlock-test/")
        .file("etc/airlock-test/old", "old\n")
        .file("usr/local/bin/old-tool", "#!/bin/bash\n", 0755)
        .close();
    TarWriter(work_.file("3.tar"), /*gzip=*/true)
        .file("usr/bin/.wh.jq", "")
        .file("etc/airlock-test/.wh..wh..opq", "")
        .file("etc/airlock-test/new", "new\n")
        .file("usr/local/bin/mytool", "#!/bin/bash\necho \"mytool as $(basename \"$0\") ${1:-}\"\n", 0755)
        .hardlink("usr/local/bin/mytool2", "usr/local/bin/mytool")
        .symlink("usr/local/bin/mt", "mytool")
        .file("usr/local/bin/suid", "#!/bin/bash\n", 04755)
        .file("srv/mine", "mine\n", 0644, 1000, 1000)
        .device("dev/evil")
        .close();
    return {{work_.file("1.tar.gz"), work_.file("2.tar"), work_.file("3.tar")},
            {"PATH=/usr/local/bin:/usr/bin:/bin", "GREETING=hello-from-config"},
            {"/bin/bash"},
            "amd64"};
  }

  static CliOptions long_wait() {
    CliOptions options;
    options.timeout = std::chrono::seconds(300);
    return options;
  }

  TempDir work_;
  std::string name_;
};

TEST_F(ImportedImage, RunsWithItsLayersEnvironmentAndOwnersAndIsRemovedByName) {
  write_oci_layout(work_.file("layout"), make_image());
  auto imported = airlock({"image", "import", work_.file("layout"), "--name", name_}, long_wait());
  ASSERT_EQ(imported.exit_code, 0) << imported.err << imported.out;
  EXPECT_NE(imported.out.find(name_ + " sha256:"), std::string::npos) << imported.out;
  EXPECT_NE(imported.out.find("languages shell"), std::string::npos) << imported.out;
  EXPECT_NE(imported.err.find("device node dev/evil (dropped)"), std::string::npos) << imported.err;
  EXPECT_NE(imported.err.find("setuid/setgid bit cleared on usr/local/bin/suid"), std::string::npos)
      << imported.err;
  auto listed = airlock({"image", "ls"});
  EXPECT_NE(listed.out.find(name_), std::string::npos) << listed.out;

  // Its first language (shell, as its Cmd says) when a run names none; from
  // a template the second time.
  auto first = airlock_json({"run", "--image", name_, "--timeout", "120", kToolScript}, long_wait());
  EXPECT_EQ(first["status"], "ok") << first.dump();
  EXPECT_EQ(first["stdout"],
            "mytool as mytool --help\nmytool as mytool2 \nmytool as mt \nhello-from-config\nno-jq\nnew \n"
            "755 0\n644 1000\nsandbox\n")
      << first["stderr"];
  auto second = airlock_json({"run", "--image", name_, "--lang", "shell", "echo again"});
  EXPECT_EQ(second["stdout"], "again\n") << second.dump();
  EXPECT_EQ(second["from_snapshot"], true);

  // airlockd (of the same cache directory) sees it at once, no restart.
  {
    const fs::path dir = "/tmp/airlock-import-d-" + std::to_string(::getpid());
    fs::create_directories(dir);
    std::optional<TestDaemon> daemon(std::in_place, dir);
    ASSERT_TRUE(daemon->start({"--pool-size", "0"}));
    auto reply = daemon->post("/v1/run", R"({"image":")" + name_ + R"(","code":"mt daemon"})");
    EXPECT_EQ(reply.status, 200) << reply.body;
    EXPECT_NE(reply.body.find("mytool as mt daemon"), std::string::npos) << reply.body;
    auto images = nlohmann::json::parse(daemon->get("/v1/images").body);
    bool seen = false;
    for (const auto& entry : images["images"]) {
      if (entry["name"] != name_) continue;
      seen = true;
      EXPECT_EQ(entry["origin"], "imported");
      EXPECT_EQ(entry["languages"], nlohmann::json::array({"shell"}));
      EXPECT_EQ(entry["digest"].get<std::string>().substr(0, 7), "sha256:");
      EXPECT_EQ(entry["env"][1], "GREETING=hello-from-config");
    }
    EXPECT_TRUE(seen) << images.dump();
    auto status = daemon->stop();
    EXPECT_TRUE(status && status->exit_code == 0) << "airlockd did not drain and exit cleanly";
    daemon.reset();
    EXPECT_TRUE(qemu_processes(dir.string() + "/").empty()) << "QEMU left running";
    fs::remove_all(dir);
  }

  auto python = airlock({"run", "--image", name_, "--lang", "python", "print(1)"});
  EXPECT_EQ(python.exit_code, 125);
  EXPECT_NE(python.err.find("image '" + name_ + "' has no python interpreter (its languages: shell)"),
            std::string::npos)
      << python.err;
  auto taken = airlock({"image", "import", work_.file("layout"), "--name", "python"});
  EXPECT_EQ(taken.exit_code, 125);
  EXPECT_NE(taken.err.find("'python' is the name of a built image"), std::string::npos) << taken.err;

  auto removed = airlock({"image", "rm", name_});
  EXPECT_EQ(removed.exit_code, 0) << removed.err;
  auto gone = airlock({"run", "--image", name_, "echo x"});
  EXPECT_EQ(gone.exit_code, 125);
  EXPECT_NE(gone.err.find("unknown image '" + name_ + "'"), std::string::npos) << gone.err;
}

// Without root: the import runs as nobody (setpriv), owners still come out
// as the layers say, and a read-only directory neither stops the build nor
// stays behind.
TEST(ImageImportWithoutRoot, OwnersAndModesComeOutAsTheLayersSay) {
  TempDir work = TempDir::create("/tmp", "airlock-import-nobody-");
  ::chmod(work.path().c_str(), 0755);
  TarWriter(work.file("layer.tar"))
      .file("bin/bash", "#!fake\n", 0755)
      .file("srv/data", "x\n", 0640, 123, 456)
      .dir("locked/", 0555)
      .file("locked/inside", "y\n", 0444)
      .file("etc/shadow", "root:*:1::::::\n", 0000)
      .close();
  write_oci_layout(work.file("layout"), {{work.file("layer.tar")}, {}, {}, "amd64"});
  fs::create_directories(work.file("cache"));
  for (const auto& entry : fs::recursive_directory_iterator(work.path())) {
    ASSERT_EQ(::lchown(entry.path().c_str(), 65534, 65534), 0) << entry.path();
  }
  const std::string manifest = engine::find_manifest("");
  auto imported =
      run_command({"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", AIRLOCK_BIN,
                   "image", "import", work.file("layout"), "--name", "nobodys", "--images", manifest},
                  {"AIRLOCK_CACHE_DIR=" + work.file("cache"), "HOME=" + work.path(), "PATH=/usr/bin:/bin"},
                  std::chrono::seconds(120));
  ASSERT_EQ(imported.status.exit_code, 0) << imported.output;
  const std::string ext4 = work.file("cache") + "/imported-images/nobodys/rootfs.ext4";
  auto stat = [&](const std::string& path) {
    return run_command({"/sbin/debugfs", "-R", "stat " + path, ext4}, {}, std::chrono::seconds(30)).output;
  };
  EXPECT_NE(stat("/bin/bash").find("User:     0   Group:     0"), std::string::npos) << stat("/bin/bash");
  EXPECT_NE(stat("/srv/data").find("User:   123   Group:   456"), std::string::npos) << stat("/srv/data");
  EXPECT_NE(stat("/home/sandbox").find("User:  1000   Group:  1000"), std::string::npos);
  EXPECT_NE(stat("/locked").find("Mode:  0555"), std::string::npos) << stat("/locked");
  EXPECT_NE(stat("/bin/bash").find("Mode:  0755"), std::string::npos) << stat("/bin/bash");
  EXPECT_NE(stat("/etc/shadow").find("Mode:  0000"), std::string::npos) << stat("/etc/shadow");
  std::vector<std::string> left;
  for (const auto& entry : fs::directory_iterator(work.file("cache") + "/imported-images")) {
    left.push_back(entry.path().filename());
  }
  EXPECT_EQ(left, std::vector<std::string>{"nobodys"}) << "the import's work directory stayed";
}

}  // namespace
}  // namespace airlock::testing
