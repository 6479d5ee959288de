#include "vmm/qemu_spec.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "common/error.h"

namespace airlock::vmm {
namespace {

QemuSpec minimal_spec() {
  QemuSpec spec;
  spec.name = "test";
  spec.kernel = "/images/vmlinux";
  spec.kernel_cmdline = "console=ttyS0 quiet";
  spec.console_fd = 3;
  spec.agent_fd = 4;
  spec.qmp_fd = 5;
  return spec;
}

std::string value_after(const std::vector<std::string>& argv, const std::string& flag) {
  auto it = std::find(argv.begin(), argv.end(), flag);
  return it == argv.end() || it + 1 == argv.end() ? "" : *(it + 1);
}

TEST(QemuSpec, BuildsAMicrovmCommandLine) {
  QemuSpec spec = minimal_spec();
  spec.memory_mb = 512;
  spec.drives.push_back({"root", "/run/x/overlay.qcow2", "qcow2", false, true});
  auto argv = spec.to_argv();
  EXPECT_EQ(argv[0], "qemu-system-x86_64");
  EXPECT_EQ(value_after(argv, "-M"), "microvm,acpi=off");
  EXPECT_EQ(value_after(argv, "-accel"), "tcg,tb-size=128");
  EXPECT_EQ(value_after(argv, "-cpu"), "max");
  EXPECT_EQ(value_after(argv, "-m"), "512");
  // The kernel command line is one argv element, never split or shell-parsed.
  EXPECT_EQ(value_after(argv, "-append"), "console=ttyS0 quiet");
  EXPECT_EQ(value_after(argv, "-drive"),
            "file=/run/x/overlay.qcow2,if=none,id=root,format=qcow2,cache=unsafe");
  EXPECT_NE(std::find(argv.begin(), argv.end(), "-no-reboot"), argv.end());
  EXPECT_NE(std::find(argv.begin(), argv.end(), "virtserialport,chardev=agent,name=airlock"), argv.end());
}

TEST(QemuSpec, KvmUsesTheHostCpu) {
  QemuSpec spec = minimal_spec();
  spec.accel = Accel::kvm;
  auto argv = spec.to_argv();
  EXPECT_EQ(value_after(argv, "-accel"), "kvm");
  EXPECT_EQ(value_after(argv, "-cpu"), "host");
}

TEST(QemuSpec, CommasInPathsAreEscaped) {
  QemuSpec spec = minimal_spec();
  spec.kernel = "/odd,dir/vmlinux";
  spec.drives.push_back({"root", "/a,b/disk.img", "raw", true, false});
  auto argv = spec.to_argv();
  EXPECT_EQ(value_after(argv, "-kernel"), "/odd,,dir/vmlinux");
  EXPECT_EQ(value_after(argv, "-drive"), "file=/a,,b/disk.img,if=none,id=root,format=raw,read-only=on");
}

TEST(QemuSpec, RefusesASpecWithoutChannels) {
  QemuSpec spec = minimal_spec();
  spec.agent_fd = -1;
  EXPECT_THROW(spec.to_argv(), Error);
}

}  // namespace
}  // namespace airlock::vmm
