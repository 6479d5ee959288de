// Layers applied as the OCI image spec says, hostile ones neutralised, and
// the store that keeps imported images (no VM: the ext4 is checked with
// debugfs). The boot of an imported image: integration/image_import_test.cc.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>

#include "common/child_process.h"
#include "common/error.h"
#include "common/io.h"
#include "common/temp_dir.h"
#include "image/image_store.h"
#include "image/root_tree.h"
#include "support/image_archives.h"

namespace airlock::image {
namespace {

namespace fs = std::filesystem;
using testing::TarWriter;

class ImageImport : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TempDir::create("/tmp", "airlock-image-test-");
    root_ = dir_.file("root");
    fs::create_directory(root_);
  }
  std::string layer(const std::string& name) const { return dir_.file(name + ".tar"); }
  std::string at(const std::string& path) const { return root_ + "/" + path; }
  bool exists(const std::string& path) const {
    struct stat st {};
    return ::lstat(at(path).c_str(), &st) == 0;
  }
  std::string apply(RootTree& tree, const std::string& tar) {
    try {
      tree.apply_layer(tar, "layer", limits_, report_);
      return "";
    } catch (const Error& e) {
      return e.what();
    }
  }

  TempDir dir_;
  std::string root_;
  UnpackLimits limits_;
  UnpackReport report_;
};

TEST_F(ImageImport, LayersApplyWithWhiteoutsOpaqueDirectoriesAndLinks) {
  TarWriter(layer("1"))
      .dir("etc/")
      .file("etc/a", "alpha\n")
      .file("etc/b", "beta\n")
      .dir("opt/o/")
      .file("opt/o/old", "old\n")
      .dir("opt/o/keep/")
      .file("opt/o/keep/lower", "lower\n")
      .dir("usr/lib/")
      .symlink("lib", "usr/lib")
      .close();
  TarWriter(layer("2"), /*gzip=*/true)
      .file("etc/.wh.b", "")
      .file("opt/o/.wh..wh..opq", "")
      .file("opt/o/new", "new\n")
      .file("opt/o/keep/upper", "upper\n")
      .hardlink("etc/a2", "etc/a")
      .file("lib/y", "through the link\n")
      .file("bin/su", "#!/bin/sh\n", 04755, 0, 0)
      .file("home/owned", "x", 0640, 123, 456)
      .device("dev/sda")
      .close();
  RootTree tree(root_);
  ASSERT_EQ(apply(tree, layer("1")), "");
  ASSERT_EQ(apply(tree, layer("2")), "");
  EXPECT_TRUE(exists("etc/a"));
  EXPECT_FALSE(exists("etc/b")) << "the whiteout removes what the lower layer had";
  EXPECT_FALSE(exists("opt/o/old")) << "an opaque directory hides the lower layer's files";
  EXPECT_FALSE(exists("opt/o/keep/lower"));
  EXPECT_EQ(read_file(at("opt/o/new"), 100), "new\n");
  EXPECT_EQ(read_file(at("opt/o/keep/upper"), 100), "upper\n");
  struct stat a {
  }, a2{}, lib{};
  ASSERT_EQ(::stat(at("etc/a").c_str(), &a), 0);
  ASSERT_EQ(::stat(at("etc/a2").c_str(), &a2), 0);
  EXPECT_EQ(a.st_ino, a2.st_ino) << "a hard link is one file";
  ASSERT_EQ(::lstat(at("lib").c_str(), &lib), 0);
  EXPECT_TRUE(S_ISLNK(lib.st_mode)) << "writing through a link keeps the link";
  EXPECT_EQ(read_file(at("usr/lib/y"), 100), "through the link\n");
  EXPECT_FALSE(exists("dev/sda"));
  ASSERT_EQ(report_.dropped.size(), 1u);
  EXPECT_NE(report_.dropped[0].find("device node dev/sda"), std::string::npos) << report_.dropped[0];
  EXPECT_EQ(report_.setid_cleared, std::vector<std::string>{"bin/su"});
  EXPECT_EQ(tree.attributes().at("bin/su").mode, 0755);
  EXPECT_EQ(tree.attributes().at("home/owned").uid, 123u);
  EXPECT_EQ(tree.attributes().at("home/owned").gid, 456u);
  tree.settle_modes(false);
  struct stat su {};
  ASSERT_EQ(::stat(at("bin/su").c_str(), &su), 0);
  EXPECT_EQ(su.st_mode & 07777, 0755);
}

TEST_F(ImageImport, NamesThatLeaveTheRootAreRefusedAndLinksStayInside) {
  const std::string outside = dir_.file("outside");
  fs::create_directory(outside);
  TarWriter(layer("abs")).file("/etc/passwd", "x").close();
  TarWriter(layer("dots")).file("a/../../escape", "x").close();
  TarWriter(layer("dotwhiteout")).file("a/.wh..", "").close();
  // Links that point out of the root, then names written through them.
  TarWriter(layer("links"))
      .symlink("up", "../../../../../../" + outside.substr(1))
      .symlink("top", "/")
      .symlink("loop", "loop")
      .close();
  TarWriter(layer("through")).file("up/pwned", "x").file("top/etc/pwned", "y").close();
  TarWriter(layer("hardout")).hardlink("stolen", "../../etc/passwd").close();
  TarWriter(layer("hardvia")).hardlink("stolen", "top/etc/shadow").close();
  TarWriter(layer("loopy")).file("loop/x", "x").close();
  RootTree tree(root_);
  EXPECT_NE(apply(tree, layer("abs")).find("absolute name '/etc/passwd'"), std::string::npos);
  EXPECT_NE(apply(tree, layer("dots")).find("'..'"), std::string::npos);
  EXPECT_NE(apply(tree, layer("dotwhiteout")).find("whiteout"), std::string::npos);
  ASSERT_EQ(apply(tree, layer("links")), "");
  ASSERT_EQ(apply(tree, layer("through")), "");
  EXPECT_FALSE(fs::exists(outside + "/pwned")) << "a link out of the root was followed";
  EXPECT_TRUE(exists(outside.substr(1) + "/pwned"))
      << "the link resolves inside the root, as the guest sees it";
  EXPECT_TRUE(exists("etc/pwned"));
  EXPECT_NE(apply(tree, layer("hardout")).find("'..'"), std::string::npos);
  EXPECT_NE(apply(tree, layer("hardvia")).find("not a file of the image"), std::string::npos);
  EXPECT_NE(apply(tree, layer("loopy")).find("too many levels of symbolic links"), std::string::npos);
}

// Paths resolved when an entry is read and used later (an opaque
// directory's pruning, the modes set at the end) must not follow a link a
// later entry put in their way: the host's files stay as they were.
TEST_F(ImageImport, ALinkPutInPlaceOfADirectoryLaterNeverLeadsOut) {
  const std::string victim = dir_.file("victim");
  fs::create_directories(victim + "/sub");
  write_file(victim + "/keep", "host file", 0600);
  TarWriter(layer("lower")).dir("d/").file("d/x", "x", 0777).dir("e/").file("e/y", "y", 0600).close();
  TarWriter(layer("opaque-then-link")).file("d/.wh..wh..opq", "").symlink("d", victim).close();
  TarWriter(layer("relink")).symlink("e", "d").close();
  RootTree tree(root_);
  ASSERT_EQ(apply(tree, layer("lower")), "");
  ASSERT_EQ(apply(tree, layer("opaque-then-link")), "");
  EXPECT_TRUE(fs::exists(victim + "/keep")) << "pruning followed the link out of the root";
  EXPECT_TRUE(fs::exists(victim + "/sub"));
  ASSERT_EQ(apply(tree, layer("relink")), "");
  tree.settle_modes(false);
  struct stat st {};
  ASSERT_EQ(::stat((victim + "/keep").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600) << "a mode meant for the image's d/x reached the host";
  EXPECT_EQ(tree.attributes().count("d/x"), 0u) << "what a later layer removed keeps no attributes";
  EXPECT_EQ(tree.attributes().count("e/y"), 0u);
}

TEST_F(ImageImport, ALayerThatUnpacksPastTheLimitIsRefused) {
  TarWriter(layer("bomb"), /*gzip=*/true).zeros("zeros", 64 << 20).close();
  EXPECT_LT(fs::file_size(layer("bomb")), 1u << 20) << "the bomb is small packed";
  limits_.max_bytes = 16 << 20;
  RootTree tree(root_);
  const std::string error = apply(tree, layer("bomb"));
  EXPECT_NE(error.find("unpacks past the limit of 16 MiB"), std::string::npos) << error;
  // A sparse file counts at its size, not at the few blocks it writes.
  TarWriter(layer("sparse")).sparse("huge", 1ull << 40).close();
  EXPECT_NE(apply(tree, layer("sparse")).find("unpacks past the limit"), std::string::npos)
      << apply(tree, layer("sparse"));
  limits_ = {};
  limits_.max_entries = 3;
  TarWriter many(layer("many"));
  for (int i = 0; i < 5; ++i) many.file("f" + std::to_string(i), "x");
  many.close();
  EXPECT_NE(apply(tree, layer("many")).find("more than 3 entries"), std::string::npos);
  TarWriter(layer("junk")).close();
  write_file(layer("junk"), "this is not a tar at all, not even compressed");
  EXPECT_NE(apply(tree, layer("junk")).find("not a tar"), std::string::npos) << apply(tree, layer("junk"));
}

class ImageStoreTest : public ImageImport {
 protected:
  std::string base_layer() {
    TarWriter(layer("base"))
        .dir("bin/")
        .file("bin/bash", "#!fake\n", 0755)
        .file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n")
        .file("srv/data", "owned by 123\n", 0640, 123, 456)
        .close();
    return layer("base");
  }
  std::string debugfs(const std::string& image, const std::string& request) {
    return run_command({"/sbin/debugfs", "-R", request, image}, {}, std::chrono::seconds(30)).output;
  }
  ImportOptions options(const std::string& name) {
    ImportOptions o;
    o.name = name;
    o.interpreters = {{"python", "/usr/bin/python3"}, {"shell", "/bin/bash"}};
    return o;
  }
};

TEST_F(ImageStoreTest, AnOciLayoutBecomesABootableExt4WithItsOwnersAndTheSandboxUser) {
  testing::ImageSpec spec{{base_layer()}, {"PATH=/usr/local/bin:/usr/bin:/bin", "GREETING=hi"}, {}, "amd64"};
  const std::string digest = testing::write_oci_layout(dir_.file("layout"), spec);
  ImageStore store(dir_.file("store"));
  ImportResult result = store.import(dir_.file("layout"), options("tools"));
  EXPECT_EQ(result.image.digest, digest);
  EXPECT_EQ(result.image.format, "oci-layout");
  EXPECT_EQ(result.image.languages, std::vector<std::string>{"shell"});
  EXPECT_EQ(result.image.env, spec.env);
  EXPECT_FALSE(result.reused);
  auto found = store.find("tools");
  ASSERT_TRUE(found);
  EXPECT_EQ(found->rootfs, dir_.file("store") + "/tools/rootfs.ext4");
  EXPECT_EQ(found->languages, result.image.languages);
  const std::string ext4 = found->rootfs;
  EXPECT_NE(debugfs(ext4, "stat /srv/data").find("User:   123   Group:   456"), std::string::npos)
      << debugfs(ext4, "stat /srv/data");
  EXPECT_NE(debugfs(ext4, "stat /home/sandbox").find("User:  1000   Group:  1000"), std::string::npos)
      << debugfs(ext4, "stat /home/sandbox");
  EXPECT_NE(debugfs(ext4, "cat /etc/passwd").find("sandbox:x:1000:1000"), std::string::npos);
  EXPECT_NE(debugfs(ext4, "ls -l /").find("tmp"), std::string::npos);
  EXPECT_NE(debugfs(ext4, "stat /tmp").find("Mode:  01777"), std::string::npos) << debugfs(ext4, "stat /tmp");

  // The same image again under another name shares the file (one template).
  ImportResult again = store.import(dir_.file("layout"), options("tools2"));
  EXPECT_TRUE(again.reused);
  EXPECT_EQ(fs::hard_link_count(ext4), 2u);
  EXPECT_EQ(store.list().size(), 2u);
  // The same config over other layers is another image, whatever its config digest says.
  TarWriter(layer("other")).file("bin/bash", "#!other\n", 0755).close();
  const std::string same_config =
      testing::write_oci_layout(dir_.file("layout-other"), {{layer("other")}, spec.env, {}, "amd64"});
  EXPECT_EQ(same_config, digest);
  ImportResult other = store.import(dir_.file("layout-other"), options("other"));
  EXPECT_FALSE(other.reused) << "layers nobody checked against the config were trusted by its digest";
  store.remove("other");
  try {
    store.import(dir_.file("layout"), options("tools"));
    ADD_FAILURE() << "a taken name was imported over";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::conflict);
  }
  ImportOptions replacing = options("tools2");
  replacing.replace = true;
  EXPECT_TRUE(store.import(dir_.file("layout"), replacing).reused) << "--replace puts the image in place";
  store.remove("tools2");
  EXPECT_FALSE(store.find("tools2"));
  EXPECT_EQ(fs::hard_link_count(ext4), 1u);
  EXPECT_THROW(store.remove("tools2"), Error);
  // Nothing of the imports is left beside the images.
  std::vector<std::string> left;
  for (const auto& entry : fs::directory_iterator(dir_.file("store")))
    left.push_back(entry.path().filename());
  EXPECT_EQ(left, std::vector<std::string>{"tools"});
}

TEST_F(ImageStoreTest, DockerSaveAndOciArchivesImportAndBadImagesSayWhatIsWrong) {
  testing::ImageSpec spec{{base_layer()}, {}, {"/usr/bin/python3", "app.py"}, "amd64"};
  ImageStore store(dir_.file("store"));
  const std::string digest = testing::write_docker_archive(dir_.file("saved.tar"), spec);
  ImportResult docker = store.import(dir_.file("saved.tar"), options("saved"));
  EXPECT_EQ(docker.image.format, "docker-archive");
  EXPECT_EQ(docker.image.digest, digest);
  testing::write_oci_layout(dir_.file("layout"), spec);
  testing::tar_directory(dir_.file("layout"), dir_.file("oci.tar"));
  EXPECT_EQ(store.import(dir_.file("oci.tar"), options("archived")).image.format, "oci-archive");

  auto refusal = [&](const std::string& source, const std::string& name) -> std::string {
    try {
      store.import(source, options(name));
      return "imported";
    } catch (const Error& e) {
      return e.what();
    }
  };
  EXPECT_NE(refusal(dir_.file("missing.tar"), "m").find("neither an image archive nor"), std::string::npos);
  EXPECT_NE(refusal(dir_.file("layout"), "Bad Name").find("image name 'Bad Name' is invalid"),
            std::string::npos);
  // A layer whose bytes do not match its digest.
  for (const auto& blob : fs::directory_iterator(dir_.file("layout") + "/blobs/sha256")) {
    if (fs::file_size(blob.path()) > 1024) {
      std::string bytes = read_file(blob.path(), 1 << 24);
      bytes[bytes.size() / 2] ^= 1;
      write_file(blob.path(), bytes);
    }
  }
  EXPECT_NE(refusal(dir_.file("layout"), "damaged").find("is damaged"), std::string::npos);
  spec.architecture = "arm64";
  testing::write_docker_archive(dir_.file("arm.tar"), spec);
  EXPECT_NE(refusal(dir_.file("arm.tar"), "arm").find("linux/arm64"), std::string::npos);
  TarWriter(layer("no-interpreter")).file("etc/hostname", "nothing here\n").close();
  testing::write_docker_archive(dir_.file("saved-bare.tar"), {{layer("no-interpreter")}, {}, {}, "amd64"});
  const std::string none = refusal(dir_.file("saved-bare.tar"), "empty");
  EXPECT_NE(
      none.find("none of the programs airlock runs code with: /usr/bin/python3 (python), /bin/bash (shell)"),
      std::string::npos)
      << none;
  EXPECT_FALSE(store.find("empty"));
  std::vector<std::string> left;
  for (const auto& entry : fs::directory_iterator(dir_.file("store")))
    left.push_back(entry.path().filename());
  std::sort(left.begin(), left.end());
  EXPECT_EQ(left, (std::vector<std::string>{"archived", "saved"})) << "a failed import leaves nothing";
}

// The official python and node images keep their interpreters in
// /usr/local/bin: the import links them where airlock runs them from.
TEST_F(ImageStoreTest, InterpretersOnTheImagesPathAreLinkedWhereAirlockRunsThem) {
  TarWriter(layer("official"))
      .file("usr/local/bin/python3.12", "#!fake\n", 0755)
      .symlink("usr/local/bin/python3", "python3.12")
      .file("opt/node/bin/node", "#!fake\n", 0755)
      .file("usr/bin/bash", "#!fake\n", 0755)
      .symlink("bin", "usr/bin")
      .close();
  ImageStore store(dir_.file("store"));
  ImportOptions o = options("official");
  o.interpreters = {{"python", "/usr/bin/python3"}, {"javascript", "/usr/bin/node"}, {"shell", "/bin/bash"}};
  testing::write_oci_layout(
      dir_.file("layout"),
      {{layer("official")}, {"PATH=/usr/local/bin:/opt/node/bin:/usr/bin"}, {"python3"}, "amd64"});
  ImportResult result = store.import(dir_.file("layout"), o);
  EXPECT_EQ(result.image.languages, (std::vector<std::string>{"python", "javascript", "shell"}))
      << "python first: the image's Cmd starts it";
  EXPECT_EQ(result.report.linked, (std::vector<std::string>{"/usr/bin/python3 -> /usr/local/bin/python3",
                                                            "/usr/bin/node -> /opt/node/bin/node"}));
  EXPECT_NE(debugfs(result.image.rootfs, "stat /usr/bin/python3")
                .find("Fast link dest: \"/usr/local/bin/python3\""),
            std::string::npos)
      << debugfs(result.image.rootfs, "stat /usr/bin/python3");
  EXPECT_NE(debugfs(result.image.rootfs, "ls /usr/lib/airlock").find("reseed.js"), std::string::npos)
      << "node's reseed hook, which NODE_OPTIONS requires";
}

}  // namespace
}  // namespace airlock::image
