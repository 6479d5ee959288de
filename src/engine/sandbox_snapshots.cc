// A registry's user snapshots: taking them of live sandboxes, and the
// sandboxes that go on from them (restore, fork). docs/snapshots.md.
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "common/error.h"
#include "engine/live_sandbox.h"
#include "engine/sandbox.h"
#include "engine/sandbox_json.h"
#include "vmm/disk_image.h"

namespace airlock::engine {

namespace {

// Copies restored at once by a fork: each is a QEMU loading its RAM, which
// takes a core.
constexpr int kParallelRestores = 2;

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A hard link where the file system allows one (a layer is never written
// again, so sharing its inode is safe), else a copy.
void link_or_copy(const std::string& from, const std::string& to) {
  if (::link(from.c_str(), to.c_str()) == 0) return;
  if (errno != EXDEV && errno != EPERM) throw_errno("link", to);
  std::error_code error;
  if (!std::filesystem::copy_file(from, to, error)) {
    throw Error(error.value() == ENOSPC ? ErrorCode::no_space : ErrorCode::vm,
                "copying " + from + ": " + error.message());
  }
}

// The store's disk must hold the guest's RAM (at most) and its disk layer.
void check_room(const std::string& dir, uint64_t needed) {
  struct statvfs info {};
  if (::statvfs(dir.c_str(), &info) < 0) throw_errno("statvfs", dir);
  const uint64_t free_bytes = static_cast<uint64_t>(info.f_bavail) * info.f_frsize;
  if (free_bytes < needed) {
    throw Error(ErrorCode::no_space,
                "the snapshot store (" + dir + ") has " + std::to_string(free_bytes >> 20) +
                    " MiB free; this snapshot needs up to " + std::to_string(needed >> 20) + " MiB");
  }
}

}  // namespace

SandboxInfo SandboxRegistry::pause(const std::string& id) {
  auto sandbox = find(id);
  sandbox->pause();
  return sandbox->info();
}

SandboxInfo SandboxRegistry::resume(const std::string& id) {
  auto sandbox = find(id);
  sandbox->resume();
  return sandbox->info();
}

SnapshotMeta SandboxRegistry::snapshot(const std::string& id, const std::string& name,
                                       const std::map<std::string, std::string>& labels) {
  return take_snapshot(id, name, labels, false);
}

void SandboxRegistry::bake_memory(const SandboxSpec& spec, SnapshotStore::Draft& draft, SnapshotMeta& meta) {
  // A copy would load the whole RAM from the state, into memory of its own.
  // Rewritten once into a RAM file, copies map it copy-on-write as clones
  // map a template's: they start in a fraction of the time and share what
  // they only read. Only a clone's RAM is a backend such a file can stand
  // in for; where baking fails, the snapshot keeps its RAM in the state.
  if (!meta.named_memory) return;
  // Under KVM a VM that never ran saves a kvmclock it never read (QEMU
  // reads the clock afresh for a VM not stopped from running), and copies'
  // monotonic clocks would go back: not baked there until that is tested.
  if (engine_.accelerator(spec.plan.profile.accel) == vmm::Accel::kvm) return;
  const std::string memory = draft.file("memory");
  const std::string baked = draft.file("state.baked");
  try {
    engine_.bake_memory(spec.plan.profile,
                        CopySource{draft.file("state"), draft.file("disk.qcow2"), "", true, ""}, memory,
                        baked);
    if (::rename(baked.c_str(), draft.file("state").c_str()) < 0) throw_errno("rename", baked);
    meta.memory_file = true;
    meta.files.push_back({"memory", 0, ""});
  } catch (const std::exception& e) {
    ::unlink(memory.c_str());
    ::unlink(baked.c_str());
    // Slower copies, but whole ones: said on airlockd's log.
    std::fprintf(stderr, "airlockd: the snapshot of %s keeps its RAM in its state: %s\n",
                 meta.source_sandbox.c_str(), e.what());
  }
}

SnapshotMeta SandboxRegistry::take_snapshot(const std::string& id, const std::string& name,
                                            const std::map<std::string, std::string>& labels,
                                            bool ephemeral) {
  auto sandbox = find(id);
  sandbox->expect_live();
  SnapshotStore::Draft draft = snapshots_.begin(name, labels);
  const SandboxSpec& spec = sandbox->spec();
  check_room(draft.dir(), (static_cast<uint64_t>(spec.plan.profile.memory_mb) << 20) +
                              (static_cast<uint64_t>(spec.plan.request.disk_mb) << 20));
  // Taken first: a sandbox destroyed once its snapshot is taken gives its origin up.
  const std::shared_ptr<SnapshotStore::Use> origin = sandbox->origin();
  const auto taken = sandbox->snapshot_into(draft.file("state"), draft.file("disk.qcow2"));

  SnapshotMeta meta;
  meta.name = name;
  meta.labels = labels;
  meta.ephemeral = ephemeral;
  meta.source_sandbox = id;
  meta.sandbox = to_json(SandboxRequest{spec.plan.request, spec.ttl_s, spec.idle_timeout_s});
  meta.created_at_ms = now_ms();
  meta.paused_ms = taken.timing.paused_ms;
  meta.total_ms = taken.timing.total_ms;
  meta.named_memory = taken.named_memory;
  meta.files = {{"state", 0, ""}, {"disk.qcow2", 0, ""}};
  // The copied layer names its backing by an absolute path; the snapshot
  // gets its own links to every layer below it, named relative to itself,
  // down to the template's disk (or the image itself, for a VM that booted).
  std::string backing;
  std::string backing_format = "qcow2";
  std::string base_format = "qcow2";
  if (origin) {
    const SnapshotMeta& parent = origin->meta();
    for (const auto& file : parent.files) {
      // Its RAM is its own (the state's, or beside it): only disk layers stack.
      if (file.name == "state" || file.name == "memory") continue;
      const std::string as =
          file.name == "disk.qcow2" ? "layer-" + std::to_string(parent.depth) + ".qcow2" : file.name;
      link_or_copy(origin->file(file.name), draft.file(as));
      meta.files.push_back({as, file.bytes, file.sha256});
      if (file.name == "template.raw") base_format = "raw";
    }
    backing = "layer-" + std::to_string(parent.depth) + ".qcow2";
    meta.parent = parent.id;
    meta.depth = parent.depth + 1;
  } else {
    base_format = vmm::is_qcow2(taken.disk_backing) ? "qcow2" : "raw";
    backing = "template." + base_format;
    backing_format = base_format;
    link_or_copy(taken.disk_backing, draft.file(backing));
    meta.files.push_back({backing, 0, ""});
    meta.depth = 1;
  }
  const std::string layer = draft.file("disk.qcow2");
  vmm::run_qemu_img({"rebase", "-u", "-f", "qcow2", "-b", backing, "-F", backing_format, layer},
                    "pointing the snapshot's disk at its layers");
  if (meta.depth > SnapshotStore::kMaxDepth) {
    // Too deep a chain slows every read: this layer takes in the ones
    // between it and the template's disk, and those links go.
    vmm::run_qemu_img({"rebase", "-f", "qcow2", "-b", "template." + base_format, "-F", base_format, layer},
                      "flattening the snapshot's disk");
    std::vector<SnapshotFile> kept;
    for (const auto& file : meta.files) {
      if (file.name.rfind("layer-", 0) == 0) {
        ::unlink(draft.file(file.name).c_str());
      } else {
        kept.push_back(file);
      }
    }
    meta.files = std::move(kept);
    meta.depth = 1;
  }
  bake_memory(spec, draft, meta);
  return snapshots_.commit(std::move(draft), std::move(meta));
}

std::vector<SnapshotMeta> SandboxRegistry::snapshots() { return snapshots_.list(); }

SnapshotMeta SandboxRegistry::snapshot_info(const std::string& id_or_name) {
  return snapshots_.find(id_or_name);
}

SnapshotMeta SandboxRegistry::verify_snapshot(const std::string& id_or_name) {
  return snapshots_.check(id_or_name);
}

SnapshotMeta SandboxRegistry::remove_snapshot(const std::string& id_or_name) {
  return snapshots_.remove(id_or_name);
}

SandboxInfo SandboxRegistry::restore(const std::string& snapshot, int ttl_s, int idle_timeout_s) {
  return restore_from(snapshots_.use(snapshot), ttl_s, idle_timeout_s);
}

SandboxInfo SandboxRegistry::restore_from(const std::shared_ptr<SnapshotStore::Use>& use, int ttl_s,
                                          int idle_timeout_s) {
  const SnapshotMeta& meta = use->meta();
  SandboxRequest request = sandbox_request_from_json(meta.sandbox);
  engine_.choose_image(request.run);
  Profile profile = profile_of(request.run);
  SandboxSpec spec{RunPlan{std::move(request.run), std::move(profile)}, ttl_s > 0 ? ttl_s : request.ttl_s,
                   idle_timeout_s > 0 ? idle_timeout_s : request.idle_timeout_s};
  spec.idle_timeout_s = std::min(spec.idle_timeout_s, spec.ttl_s);
  const CopySource source{use->file("state"), use->file("disk.qcow2"), use->file("empty-layer.qcow2"),
                          meta.named_memory, meta.memory_file ? use->file("memory") : ""};
  return admit(std::move(spec), [&](const SandboxSpec& admitted) {
    const std::function<ReadyGuest()> start = [&] {
      return engine_.start_copy(admitted.plan.profile, source);
    };
    AcquiredGuest acquired = source_(admitted, &start);
    acquired.origin = use;
    return acquired;
  });
}

std::vector<SandboxRegistry::ForkCopy> SandboxRegistry::fork(const std::string& id, int count) {
  if (count < 1 || count > kMaxForks) {
    throw Error(ErrorCode::invalid_argument,
                "count " + std::to_string(count) + " is out of range (1-" + std::to_string(kMaxForks) + ")");
  }
  const SnapshotMeta meta = take_snapshot(id, "", {{"airlock/fork-of", id}}, /*ephemeral=*/true);
  // Held until every copy is made; each copy holds it for its own life.
  std::shared_ptr<SnapshotStore::Use> use;
  try {
    use = snapshots_.use(meta.id);
  } catch (const Error&) {
    snapshots_.remove(meta.id);
    throw;
  }
  std::vector<ForkCopy> copies(static_cast<size_t>(count));
  std::atomic<int> next{0};
  auto restore_copies = [&] {
    for (int i = next++; i < count; i = next++) {
      try {
        copies[static_cast<size_t>(i)].sandbox = restore_from(use, 0, 0);
      } catch (const Error& e) {
        copies[static_cast<size_t>(i)].error = e;
      }
    }
  };
  std::vector<std::thread> workers;
  for (int i = 1; i < std::min(count, kParallelRestores); ++i) workers.emplace_back(restore_copies);
  restore_copies();
  for (auto& worker : workers) worker.join();
  return copies;
}

}  // namespace airlock::engine
