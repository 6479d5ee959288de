#include "vmm/disk_image.h"

#include <gtest/gtest.h>

#include "common/child_process.h"
#include "common/error.h"
#include "common/io.h"
#include "common/temp_dir.h"

namespace airlock::vmm {
namespace {

void qemu_img(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"qemu-img"};
  argv.insert(argv.end(), args.begin(), args.end());
  auto result = run_command(argv, {"PATH=/usr/bin:/bin"}, std::chrono::seconds(10));
  ASSERT_EQ(result.status.exit_code, 0) << result.output;
}

TEST(DiskImage, BackingChainFollowsEveryQcow2Header) {
  TempDir dir = TempDir::create(::testing::TempDir(), "disk-");
  write_file(dir.file("base.raw"), std::string(1 << 20, '\0'));
  qemu_img(
      {"create", "-q", "-f", "qcow2", "-F", "raw", "-b", dir.file("base.raw"), dir.file("middle.qcow2")});
  // A relative backing name is relative to the overlay's directory.
  qemu_img({"create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", "middle.qcow2", dir.file("top.qcow2")});
  EXPECT_EQ(
      backing_chain(dir.file("top.qcow2")),
      (std::vector<std::string>{dir.file("top.qcow2"), dir.file("middle.qcow2"), dir.file("base.raw")}));
  EXPECT_EQ(virtual_disk_size(dir.file("top.qcow2")), 1u << 20);
  EXPECT_EQ(virtual_disk_size(dir.file("base.raw")), 1u << 20);
}

TEST(DiskImage, MissingImageIsANamedError) {
  try {
    backing_chain("/nonexistent/airlock.qcow2");
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "open(\"/nonexistent/airlock.qcow2\"): No such file or directory");
  }
}

}  // namespace
}  // namespace airlock::vmm
