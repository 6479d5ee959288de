// `airlock image pull` against Debian's docker-registry on loopback (the
// OCI distribution API): the test pushes an image with curl as a client
// would, then pulls it by tag, through an index, and refuses what a
// registry serves wrong. No VM: the pulled layout is imported as any other
// (image_import_test.cc boots one).

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "common/child_process.h"
#include "common/io.h"
#include "common/temp_dir.h"
#include "image/oci_source.h"
#include "support/airlock_cli.h"
#include "support/image_archives.h"

namespace airlock::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class ImagePull : public ::testing::Test {
 protected:
  void SetUp() override {
    auto program = find_program("docker-registry");
    ASSERT_TRUE(program) << "docker-registry is not installed (scripts/install-deps installs it)";
    work_ = TempDir::create("/tmp", "airlock-pull-it-");
    port_ = free_loopback_port();
    registry_ = "127.0.0.1:" + std::to_string(port_);
    write_file(work_.file("config.yml"),
               "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n"
               "    rootdirectory: " +
                   work_.file("data") + "\nhttp:\n  addr: " + registry_ + "\n");
    SpawnOptions options;
    registry_process_ = ChildProcess::spawn({*program, "serve", work_.file("config.yml")}, options);
    for (int i = 0; i < 100 && curl({"-o", "/dev/null", "-w", "%{http_code}", url("/v2/")}) != "200"; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ASSERT_EQ(curl({"-o", "/dev/null", "-w", "%{http_code}", url("/v2/")}), "200")
        << "the registry did not start";
    suffix_ = std::to_string(::getpid());
  }
  void TearDown() override {
    for (const auto& name : names_) run_cli({"image", "rm", name});
    registry_process_.kill(SIGKILL);
    registry_process_.wait();
    work_.remove();
  }

  std::string url(const std::string& path) const { return "http://" + registry_ + path; }
  std::string curl(std::vector<std::string> args) const {
    args.insert(args.begin(), {"curl", "-s"});
    return run_command(args, {}, std::chrono::seconds(60)).output;
  }
  void push_blob(const std::string& repository, const std::string& path) {
    const std::string headers = curl({"-i", "-X", "POST", url("/v2/" + repository + "/blobs/uploads/")});
    const size_t at = headers.find("Location: ");
    ASSERT_NE(at, std::string::npos) << headers;
    const std::string location = headers.substr(at + 10, headers.find('\r', at) - at - 10);
    const std::string code = curl({"-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT", "-H",
                                   "Content-Type: application/octet-stream", "--data-binary", "@" + path,
                                   location + "&digest=" + image::sha256_of_file(path)});
    EXPECT_EQ(code, "201") << "pushing " << path;
  }
  void push_manifest(const std::string& repository, const std::string& tag, const std::string& body,
                     const std::string& type) {
    write_file(work_.file("manifest.json"), body);
    const std::string code = curl(
        {"-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT", "-H", "Content-Type: " + type, "--data-binary",
         "@" + work_.file("manifest.json"), url("/v2/" + repository + "/manifests/" + tag)});
    EXPECT_EQ(code, "201") << "pushing manifest " << tag;
  }
  // An image made as the import tests make one, pushed as team/tools:TAG;
  // returns its manifest (digest, size) and its config digest.
  struct Pushed {
    std::string manifest_digest, config_digest;
    size_t manifest_size = 0;
  };
  Pushed push_image(const std::string& tag, const std::string& architecture) {
    const std::string layout = work_.file("layout-" + tag);
    TarWriter(work_.file(tag + ".tar"), /*gzip=*/true)
        .file("bin/bash", "#!fake\n", 0755)
        .file("etc/motd", architecture + "\n")
        .close();
    Pushed pushed;
    pushed.config_digest = write_oci_layout(layout, {{work_.file(tag + ".tar")}, {"A=1"}, {}, architecture});
    const json index = json::parse(read_file(layout + "/index.json", 1 << 20));
    const json& descriptor = index["manifests"][1];
    pushed.manifest_digest = descriptor["digest"];
    pushed.manifest_size = descriptor["size"];
    const std::string manifest_text =
        read_file(layout + "/blobs/sha256/" + pushed.manifest_digest.substr(7), 1 << 20);
    const json manifest = json::parse(manifest_text);
    push_blob("team/tools", layout + "/blobs/sha256/" + pushed.config_digest.substr(7));
    for (const auto& layer : manifest["layers"]) {
      push_blob("team/tools", layout + "/blobs/sha256/" + layer["digest"].get<std::string>().substr(7));
    }
    push_manifest("team/tools", tag, manifest_text, "application/vnd.oci.image.manifest.v1+json");
    return pushed;
  }
  CliResult pull(const std::string& reference, const std::string& name) {
    names_.push_back(name);
    return run_cli({"image", "pull", reference, "--name", name, "--json"});
  }

  TempDir work_;
  int port_ = 0;
  std::string registry_, suffix_;
  ChildProcess registry_process_;
  std::vector<std::string> names_;
};

TEST_F(ImagePull, ByTagAndThroughAnIndexAndWhatARegistryServesWrongIsRefused) {
  const Pushed amd64 = push_image("1.2", "amd64");
  const Pushed arm64 = push_image("arm", "arm64");
  const json index = {{"schemaVersion", 2},
                      {"mediaType", "application/vnd.oci.image.index.v1+json"},
                      {"manifests",
                       {{{"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                         {"digest", arm64.manifest_digest},
                         {"size", arm64.manifest_size},
                         {"platform", {{"os", "linux"}, {"architecture", "arm64"}}}},
                        {{"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                         {"digest", amd64.manifest_digest},
                         {"size", amd64.manifest_size},
                         {"platform", {{"os", "linux"}, {"architecture", "amd64"}}}}}}};
  push_manifest("team/tools", "multi", index.dump(), "application/vnd.oci.image.index.v1+json");

  const std::string tagged = registry_ + "/team/tools:1.2";
  auto first = pull(tagged, "it-pulled-" + suffix_);
  ASSERT_EQ(first.exit_code, 0) << first.err << first.out;
  const json result = json::parse(first.out);
  EXPECT_EQ(result["image"]["digest"], amd64.config_digest);
  EXPECT_EQ(result["image"]["source"], tagged);
  EXPECT_EQ(result["image"]["format"], "registry");
  EXPECT_EQ(result["image"]["languages"], json::array({"shell"}));
  EXPECT_EQ(result["image"]["env"], json::array({"A=1"}));

  // Through the index: its amd64 image, the one already here (one file).
  auto indexed = pull(registry_ + "/team/tools:multi", "it-pulled-multi-" + suffix_);
  ASSERT_EQ(indexed.exit_code, 0) << indexed.err;
  EXPECT_EQ(json::parse(indexed.out)["image"]["digest"], amd64.config_digest);
  EXPECT_EQ(json::parse(indexed.out)["reused"], true);
  auto by_digest = pull(registry_ + "/team/tools@" + amd64.manifest_digest, "it-pulled-digest-" + suffix_);
  EXPECT_EQ(by_digest.exit_code, 0) << by_digest.err;
  auto listed = run_cli({"image", "ls"});
  EXPECT_NE(listed.out.find(tagged), std::string::npos) << listed.out;

  auto arm_only = pull(registry_ + "/team/tools:arm", "it-pulled-arm-" + suffix_);
  EXPECT_EQ(arm_only.exit_code, 125);
  EXPECT_NE(arm_only.err.find("linux/arm64"), std::string::npos) << arm_only.err;
  auto missing = pull(registry_ + "/team/tools:nope", "it-pulled-missing-" + suffix_);
  EXPECT_EQ(missing.exit_code, 125);
  EXPECT_NE(missing.err.find("has no team/tools:nope"), std::string::npos) << missing.err;
  auto malformed = pull("127.0.0.1:1/Team//x", "it-pulled-bad-" + suffix_);
  EXPECT_NE(malformed.err.find("image reference '127.0.0.1:1/Team//x' is invalid"), std::string::npos)
      << malformed.err;
  auto unreachable = pull("127.0.0.1:" + std::to_string(free_loopback_port()) + "/team/tools:1.2",
                          "it-pulled-gone-" + suffix_);
  EXPECT_EQ(unreachable.exit_code, 125);
  EXPECT_NE(unreachable.err.find("cannot fetch"), std::string::npos) << unreachable.err;

  // The registry's copy of the layer goes bad: the pull says so and keeps nothing.
  const json manifest = json::parse(
      read_file(work_.file("layout-1.2") + "/blobs/sha256/" + amd64.manifest_digest.substr(7), 1 << 20));
  const std::string layer = manifest["layers"][0]["digest"].get<std::string>().substr(7);
  const std::string stored =
      work_.file("data") + "/docker/registry/v2/blobs/sha256/" + layer.substr(0, 2) + "/" + layer + "/data";
  std::string bytes = read_file(stored, 1 << 24);
  bytes[bytes.size() / 2] ^= 0x55;
  write_file(stored, bytes);
  auto damaged = pull(tagged, "it-pulled-damaged-" + suffix_);
  EXPECT_EQ(damaged.exit_code, 125);
  EXPECT_NE(damaged.err.find("is damaged"), std::string::npos) << damaged.err;
  auto images = run_cli({"image", "ls", "--json"});
  EXPECT_EQ(images.out.find("it-pulled-damaged-"), std::string::npos);
}

}  // namespace
}  // namespace airlock::testing
