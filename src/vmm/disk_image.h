#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace airlock::vmm {

// The files a disk image opens when QEMU opens it: the image itself and, for
// qcow2, its backing files in order (read from each qcow2 header). The jail
// must make every one of them visible at the path the header names.
std::vector<std::string> backing_chain(const std::string& path);

// Whether the image is a qcow2 (else raw).
bool is_qcow2(const std::string& path);

// The size the guest sees: a raw image's length, or a qcow2's virtual size.
uint64_t virtual_disk_size(const std::string& path);

// Runs qemu-img with `arguments` (no shell) within `timeout`; Error(vm)
// saying `doing`, qemu-img's exit and its output when it fails.
void run_qemu_img(const std::vector<std::string>& arguments, const std::string& doing,
                  std::chrono::seconds timeout = std::chrono::seconds(120));

}  // namespace airlock::vmm
