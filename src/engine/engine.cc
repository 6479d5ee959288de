#include "engine/engine.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <vector>

#include "common/child_process.h"
#include "common/error.h"
#include "common/io.h"
#include "common/temp_dir.h"
#include "engine/languages.h"
#include "engine/mounts.h"
#include "engine/paths.h"
#include "engine/warm_up.h"
#include "vmm/host_clock.h"
#include "vmm/qemu_backend.h"

namespace airlock::engine {

namespace {

// Generous even for the fallback kernel under TCG on a loaded machine.
constexpr auto kBootTimeout = std::chrono::seconds(30);
constexpr auto kRestoreTimeout = std::chrono::seconds(20);
// A guest's network or mount set-up (a few system calls in the agent).
constexpr auto kSetupTimeout = std::chrono::seconds(10);

}  // namespace

namespace {

// The host side of a guest's network, or null for `none` (no device at all).
std::unique_ptr<network::GuestNetwork> make_network(const std::string& policy_text,
                                                    const network::ResolverMap& resolver,
                                                    const vmm::VmConfig& vm) {
  const network::NetworkPolicy policy = network::parse_network_policy(policy_text);
  if (policy.mode == network::NetworkMode::none) return nullptr;
  network::NetstackLaunch launch{find_netstack_program(), vm.work_dir, vm.name, vm.skipped_layers};
  return std::make_unique<network::GuestNetwork>(policy, resolver, launch);
}

void mount_guest_shares(GuestSession& session, const Profile& profile) {
  protocol::MountShares message;
  message.shares = share_mount_points(profile.mounts);
  session.mount_shares(message, SteadyClock::now() + kSetupTimeout);
}

// Each mount's directory opened for one VM start (open_mount): a template
// build, a clone, a boot, a pool refill: every one checks again.
std::vector<UniqueFd> open_mounts(const Profile& profile, const MountRoots& roots) {
  std::vector<UniqueFd> opened;
  for (const auto& mount : profile.mounts) opened.push_back(open_mount(mount, roots));
  return opened;
}

}  // namespace

Engine::Engine(EngineOptions options, std::unique_ptr<vmm::VmBackend> backend)
    : options_(std::move(options)), backend_(std::move(backend)) {
  if (!backend_) backend_ = std::make_unique<vmm::QemuBackend>();
  if (options_.cache_dir.empty()) options_.cache_dir = default_cache_dir();
  if (options_.runtime_dir.empty()) options_.runtime_dir = default_runtime_dir();
  // Directories of runs whose owner was killed outright (SIGKILL) go now.
  reap_stale_dirs(options_.runtime_dir, "run-");
  reap_stale_dirs(options_.runtime_dir, "net-");
  // And a snapshot's rewrite (bake_memory): its RAM file on /dev/shm is RAM
  // until reboot. Each holds its directory's lock while it lives.
  reap_stale_dirs(options_.runtime_dir, "bake-");
  reap_stale_dirs("/dev/shm", "airlock-bake-");
  // Template builds take one for seconds; clones, a tenth of one.
  lasting_ = std::make_unique<LastingThreads>(3);
  // Which confinement layers this host can apply is known before any VM starts.
  isolation_ = vmm::jail::probe_layers(options_.cache_dir);
  for (auto& layer : isolation_) {
    if (layer.available && options_.simulate_missing_layers.count(layer.name)) {
      layer = {layer.name, false, "marked unavailable by a test"};
    }
    if (!layer.available && options_.allow_weak_isolation) skipped_layers_.insert(layer.name);
  }
  // Refused runs name the missing layers in their error; accepted ones say it once here.
  const std::string missing = vmm::jail::describe_missing(isolation_);
  if (!missing.empty() && options_.allow_weak_isolation && options_.notice) {
    options_.notice("weaker isolation accepted: QEMU runs without " + missing);
  }
  // A template's RAM file is given to the VMM uid while it is built, when there is one.
  const bool vmm_uid = std::any_of(isolation_.begin(), isolation_.end(), [](const auto& layer) {
    return layer.name == "credentials" && layer.available;
  });
  TemplateStore::Limits limits;
  int64_t budget_mb = options_.template_memory_budget_mb;
  if (budget_mb < 0)
    budget_mb = static_cast<int64_t>(::sysconf(_SC_PHYS_PAGES)) * ::sysconf(_SC_PAGESIZE) / 4 >> 20;
  limits.memory_budget_bytes = static_cast<uint64_t>(budget_mb) << 20;
  templates_.emplace(options_.cache_dir + "/templates", "/dev/shm",
                     vmm_uid ? vmm::jail::jail_uid() : ::geteuid(), limits);
  retirer_ = std::thread([this] { retire_loop(); });
}

void Engine::require_isolation() const {
  if (options_.allow_weak_isolation) return;
  const std::string missing = vmm::jail::describe_missing(isolation_);
  if (missing.empty()) return;
  throw Error(ErrorCode::unavailable,
              "refusing to run: this host cannot apply these confinement layers to QEMU: " + missing +
                  "; --allow-weak-isolation runs without them");
}

Engine::~Engine() {
  {
    std::lock_guard lock(retire_mutex_);
    retire_stop_ = true;
  }
  retire_wake_.notify_one();
  retirer_.join();
}

void Engine::retire(ReadyGuest guest) {
  {
    std::lock_guard lock(retire_mutex_);
    retiring_.push_back(std::move(guest));
  }
  retire_wake_.notify_one();
}

void Engine::retire_loop() {
  std::unique_lock lock(retire_mutex_);
  for (;;) {
    retire_wake_.wait(lock, [this] { return retire_stop_ || !retiring_.empty(); });
    if (retiring_.empty()) return;  // stopping, and nothing left
    std::optional<ReadyGuest> doomed(std::move(retiring_.front()));
    retiring_.pop_front();
    lock.unlock();
    doomed.reset();  // ~ReadyGuest: destroys the VM, then removes its run directory
    lock.lock();
  }
}

vmm::AccelDecision Engine::accel_for(vmm::AccelChoice choice, const vmm::KernelImage& kernel) {
  if (choice == vmm::AccelChoice::automatic && automatic_accel_) return *automatic_accel_;
  TempDir scratch = TempDir::create(options_.runtime_dir, "run-");
  auto decision = vmm::choose_accel(choice, kernel, options_.cache_dir, scratch.path(), skipped_layers_);
  if (decision.probed_now && options_.notice) options_.notice(decision.reason);
  if (choice == vmm::AccelChoice::automatic) automatic_accel_ = decision;
  return decision;
}

std::string Engine::template_name(const Language& language, const vmm::KernelImage& kernel,
                                  const std::string& rootfs, vmm::Accel accel, const Profile& profile) {
  // Everything the saved state depends on: a change to any of it makes a new
  // template rather than a clone of a guest that no longer matches.
  std::string initramfs_digest;
  {
    // Hashing a megabyte on every VM start is waste: once per file version.
    std::lock_guard lock(state_mutex_);
    std::string& digest = initramfs_digests_[file_identity(kernel.initramfs)];
    if (digest.empty()) digest = stable_hash(read_file(kernel.initramfs, 256 << 20));
    initramfs_digest = digest;
  }
  std::string key = std::to_string(protocol::kProtocolVersion) + "|" + language.name + "|" +
                    std::to_string(profile.memory_mb) + "|" + std::to_string(profile.cpus) + "|" +
                    std::string(vmm::to_string(accel)) + "|" + file_identity(kernel.path) + "|" +
                    initramfs_digest + "|" + kernel.machine + "|" + kernel.cmdline_extra + "|" +
                    file_identity(rootfs) + "|" +
                    file_identity(find_program("qemu-system-x86_64").value_or("qemu")) + "|" +
                    std::to_string(vmm::host_tsc_khz());
  key += "|net=" + profile.network + "|disk_room=" + std::to_string(Limits::kDiskRoomMb);
  vmm::VmConfig booted;  // the kernel command line a template boots with
  booted.accel = accel;
  booted.kernel = kernel;
  key += "|cmdline=" + vmm::guest_cmdline(booted);
  for (const auto& mount : profile.mounts) key += "|mount=" + mount.guest_path;
  for (const auto& arg : language.warmup) key += "|" + arg;
  for (const auto& arg : language.prestart) key += "|" + arg;
  key += "|" + language.warmup_program + "|" + language.prestart_file + "|" + language.job_format;
  for (const auto& entry : language.prestart_env) key += "|" + entry;
  for (const auto& entry : language.env) key += "|env=" + entry;  // the image's too (resolve)
  return profile.template_name() + "-" + stable_hash(key);
}

TemplatePaths Engine::ensure_template(const std::string& name, const Language& language,
                                      const vmm::KernelImage& kernel, const std::string& rootfs,
                                      vmm::Accel accel, const Profile& profile, const CancelToken* cancel) {
  if (auto found = templates_->find(name)) return *found;
  return templates_->create(name, [&](const TemplatePaths& paths, int memory_fd) {
    vmm::VmConfig config;
    config.name = "airlock-template-" + name;
    config.accel = accel;
    config.kernel = kernel;
    config.rootfs = rootfs;
    config.memory_mb = profile.memory_mb;
    config.disk_room_bytes = Limits::kDiskRoomMb << 20;
    config.vcpus = profile.cpus;
    config.work_dir = paths.dir;
    config.memory_file = vmm::MemoryFileSpec{paths.memory, true, memory_fd};
    config.skipped_layers = skipped_layers_;
    // The template's device set (a network device or not) is every clone's.
    // Its network stack works in the runtime directory, not in the cache.
    TempDir network_dir = TempDir::create(options_.runtime_dir, "net-");
    vmm::VmConfig network_vm = config;
    network_vm.work_dir = network_dir.path();
    auto guest_network = make_network(profile.network, options_.test_resolver, network_vm);
    if (guest_network) config.network_fd = guest_network->vm_fd();
    // The share devices exist in the template, unmounted: a mounted 9p
    // export cannot be migrated. Clones mount them after restore.
    const std::vector<UniqueFd> shares = open_mounts(profile, options_.mount_roots);
    config.shared_dirs = shared_dirs_of(profile.mounts, shares);
    std::unique_ptr<vmm::Vm> vm = backend_->start(config);
    if (guest_network) guest_network->close_vm_fd();
    GuestSession session(*vm, cancel);
    session.await_hello(SteadyClock::now() + kBootTimeout);
    if (guest_network)
      session.setup_network(guest_network->guest_setup(), SteadyClock::now() + kSetupTimeout);
    run_warmup(session, language);
    if (!language.prestart.empty()) {
      start_prestarted(session, language, language.prestart);
      // Every clone starts with the interpreter's path to a program already
      // taken once, its caches filled, in the template's memory.
      if (!language.warmup_program.empty()) warm_prestarted(session, language);
    }
    vm->save_snapshot(paths.state);
    vm->destroy();
    const std::string overlay = paths.dir + "/rootfs-overlay.qcow2";
    if (::rename(overlay.c_str(), paths.disk.c_str()) < 0) throw_errno("rename", overlay);
  });
}

std::string Profile::name() const {
  std::string all;
  for (const auto& mount : mounts) all += mount.to_string() + "\n";
  return name_with(all);
}

std::string Profile::template_name() const {
  std::string all;
  for (const auto& mount : mounts) all += mount.guest_path + "\n";
  return name_with(all);
}

std::string Profile::name_with(const std::string& mounts_key) const {
  std::string capabilities;
  if (network == "full") {
    capabilities = "-net-full";
  } else if (network != "none") {
    capabilities = "-net-" + stable_hash(network).substr(0, 8);
  }
  if (!mounts.empty()) capabilities += "-mnt-" + stable_hash(mounts_key).substr(0, 8);
  // Another image than the language's own: "python-img-python-data-256m".
  const std::string image_part = image.empty() || image == language ? "" : "-img-" + image;
  return language + image_part + "-" + std::to_string(memory_mb) + "m" +
         (cpus > 1 ? "-" + std::to_string(cpus) + "cpu" : "") + (kernel.empty() ? "" : "-" + kernel) +
         capabilities + (use_snapshot ? "" : "-fresh");
}

Profile profile_of(const RunRequest& request) {
  std::vector<MountSpec> mounts = request.mounts;
  std::sort(mounts.begin(), mounts.end(),
            [](const MountSpec& a, const MountSpec& b) { return a.guest_path < b.guest_path; });
  const std::string language = find_language(request.language).name;
  return {language,
          request.image == language ? "" : request.image,
          request.memory_mb,
          request.cpus,
          request.kernel,
          request.accel,
          request.use_snapshot,
          network::parse_network_policy(request.network).to_string(),
          std::move(mounts)};
}

ReadyGuest::~ReadyGuest() {
  session_.reset();
  if (vm_) vm_->destroy();
}

RunPlan Engine::plan(RunRequest request) const {
  validate(request);
  choose_image(request);
  for (auto& mount : request.mounts) mount = resolve_mount(mount, options_.mount_roots);
  if (!options_.allow_full_network && request.network == "full") {
    throw Error(ErrorCode::invalid_argument,
                "network 'full' is not allowed by this airlockd (unfiltered access reaches the host's "
                "network too); use allow:DOMAIN,... or ask its operator for --allow-full-network");
  }
  Profile profile = profile_of(request);
  return {std::move(request), std::move(profile)};
}

vmm::Accel Engine::accelerator(vmm::AccelChoice choice) {
  Profile profile;
  profile.language = "shell";
  profile.accel = choice;
  return resolve(profile).accel.accel;
}

Engine::Resolved Engine::resolve(const Profile& profile) {
  require_isolation();
  std::lock_guard lock(state_mutex_);
  const Language& language = find_language(profile.language);
  const RootfsImage image = catalog_locked().image(profile.image_name());
  std::unique_ptr<Language>& in_image = image_languages_[image.name + "|" + language.name];
  if (!in_image) {
    in_image = std::make_unique<Language>(language);
    in_image->env.insert(in_image->env.end(), image.env.begin(), image.env.end());
  }
  Resolved resolved{in_image.get(), catalog_->kernel(profile.kernel), image.path, {}};
  resolved.accel = accel_for(profile.accel, resolved.kernel);
  return resolved;
}

void Engine::choose_image(RunRequest& request) const {
  std::lock_guard lock(state_mutex_);
  engine::choose_image(catalog_locked(), request);
}

std::vector<RootfsImage> Engine::images() const {
  std::lock_guard lock(state_mutex_);
  return catalog_locked().all_images();
}

const ImageCatalog& Engine::catalog_locked() const {
  if (!catalog_) {
    catalog_ =
        ImageCatalog::load(find_manifest(options_.manifest_path), imported_images_dir(options_.cache_dir));
  }
  return *catalog_;
}

ReadyGuest Engine::start_guest(const Profile& profile, const CancelToken* cancel) {
  const auto accepted = SteadyClock::now();
  const Resolved resolved = resolve(profile);
  const Language& language = *resolved.language;

  std::optional<TemplatePaths> snapshot;
  std::string snapshot_name;
  if (profile.use_snapshot) {
    try {
      snapshot_name =
          template_name(language, resolved.kernel, resolved.rootfs, resolved.accel.accel, profile);
      snapshot = ensure_template(snapshot_name, language, resolved.kernel, resolved.rootfs,
                                 resolved.accel.accel, profile, cancel);
    } catch (const Error& e) {
      // A mount that changed under the request fails it here, as below.
      if (e.code() == ErrorCode::cancelled || e.code() == ErrorCode::invalid_argument) throw;
      if (options_.notice) options_.notice(std::string("no snapshot (") + e.what() + "); booting a fresh VM");
    }
  }

  ReadyGuest guest;
  guest.language_ = &language;
  guest.run_dir_ = TempDir::create(options_.runtime_dir, "run-");
  guest.accel_ = resolved.accel.accel;
  auto start = [&](bool from_snapshot) {
    vmm::VmConfig config;
    config.name = "airlock-" + guest.run_dir_.path().substr(guest.run_dir_.path().rfind('/') + 1);
    config.accel = resolved.accel.accel;
    config.kernel = resolved.kernel;
    config.rootfs = resolved.rootfs;
    config.memory_mb = profile.memory_mb;
    config.disk_room_bytes = Limits::kDiskRoomMb << 20;
    config.vcpus = profile.cpus;
    config.work_dir = guest.run_dir_.path();
    config.skipped_layers = skipped_layers_;
    guest.network_ = make_network(profile.network, options_.test_resolver, config);
    if (guest.network_) config.network_fd = guest.network_->vm_fd();
    const std::vector<UniqueFd> shares = open_mounts(profile, options_.mount_roots);
    config.shared_dirs = shared_dirs_of(profile.mounts, shares);
    if (from_snapshot) {
      config.rootfs = snapshot->disk;
      config.rootfs_format = "qcow2";
      config.rootfs_empty_layer = snapshot->dir + "/empty-layer.qcow2";
      vmm::make_empty_layer(config.rootfs, config.rootfs_format, config.rootfs_empty_layer);
      guest.template_memory_ = templates_->open_memory(snapshot_name);
      config.memory_file = vmm::MemoryFileSpec{snapshot->memory, false, guest.template_memory_.get()};
      config.restore = true;
    }
    guest.vm_ = backend_->start(config);
    if (guest.network_) guest.network_->close_vm_fd();
    const auto spawned = SteadyClock::now();
    guest.timing_.setup_ms = elapsed_ms(accepted, spawned);
    guest.session_ = std::make_unique<GuestSession>(*guest.vm_, cancel);
    if (from_snapshot) {
      guest.vm_->restore_snapshot(snapshot->state, kRestoreTimeout);
      guest.session_->resume_clone(spawned + kBootTimeout);
    } else {
      guest.session_->await_hello(spawned + kBootTimeout);
      if (guest.network_) {
        guest.session_->setup_network(guest.network_->guest_setup(), SteadyClock::now() + kSetupTimeout);
      }
    }
    if (!profile.mounts.empty()) mount_guest_shares(*guest.session_, profile);
    guest.timing_.boot_ms = elapsed_ms(spawned, SteadyClock::now());
    guest.from_snapshot_ = from_snapshot;
    guest.prestarted_ = from_snapshot && !language.prestart.empty();
  };
  if (!snapshot) {
    start(false);
    return guest;
  }
  try {
    start(true);
  } catch (const Error& e) {
    // A mount that changed since the request was checked is no snapshot's fault.
    if (e.code() == ErrorCode::cancelled || e.code() == ErrorCode::invalid_argument) throw;
    // A snapshot that does not restore is never tried again: rebuilt on the next run.
    if (options_.notice) {
      options_.notice(std::string("the snapshot could not be restored (") + e.what() +
                      "); discarding it and booting a fresh VM");
    }
    guest.session_.reset();
    if (guest.vm_) guest.vm_->destroy();
    guest.vm_.reset();
    guest.network_.reset();
    guest.template_memory_.reset();
    templates_->discard(snapshot_name);
    start(false);
  }
  return guest;
}

void Engine::warm_guest(ReadyGuest& guest) {
  const Language& language = *guest.language_;
  warm_exec_path(guest.session(), language);
  if (guest.prestarted_ && !language.warmup_program.empty()) {
    warm_prestarted(guest.session(), language);
    return;
  }
  run_warmup(guest.session(), language);
  if (!language.pool_prestart.empty() && !guest.prestarted_) {
    start_prestarted(guest.session(), language, language.pool_prestart);
    guest.prestarted_ = true;
    if (!language.warmup_program.empty()) warm_prestarted(guest.session(), language);
  }
}

std::shared_ptr<GuestMux> ReadyGuest::multiplex() {
  return std::make_shared<GuestMux>(*vm_, session_->hand_over());
}

std::string Engine::snapshot_dir() const {
  return options_.snapshot_dir.empty() ? options_.cache_dir + "/snapshots" : options_.snapshot_dir;
}

vmm::VmConfig Engine::copy_config(const Resolved& resolved, const Profile& profile, const CopySource& source,
                                  const std::string& work_dir) const {
  vmm::VmConfig config;
  config.name = "airlock-" + work_dir.substr(work_dir.rfind('/') + 1);
  config.accel = resolved.accel.accel;
  config.kernel = resolved.kernel;
  config.rootfs = source.disk;
  config.rootfs_format = "qcow2";
  config.rootfs_empty_layer = source.empty_layer;
  vmm::make_empty_layer(config.rootfs, config.rootfs_format, config.rootfs_empty_layer);
  config.memory_mb = profile.memory_mb;
  config.named_memory = source.named_memory;
  config.restore = true;
  config.vcpus = profile.cpus;
  config.work_dir = work_dir;
  config.skipped_layers = skipped_layers_;
  return config;
}

ReadyGuest Engine::start_copy(const Profile& profile, const CopySource& source, const CancelToken* cancel) {
  return lasting_->run<ReadyGuest>([&] {
    const auto accepted = SteadyClock::now();
    const Resolved resolved = resolve(profile);
    ReadyGuest guest;
    guest.language_ = resolved.language;
    guest.run_dir_ = TempDir::create(options_.runtime_dir, "run-");
    guest.accel_ = resolved.accel.accel;
    vmm::VmConfig config = copy_config(resolved, profile, source, guest.run_dir_.path());
    if (!source.memory.empty()) {
      // Mapped copy-on-write: the file never changes (the snapshot is whole and read-only).
      guest.template_memory_ = UniqueFd(::open(source.memory.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
      if (!guest.template_memory_) throw_errno("open", source.memory);
      config.memory_file = vmm::MemoryFileSpec{source.memory, false, guest.template_memory_.get()};
    }
    // A network of its own: the source's connections are not the copy's.
    guest.network_ = make_network(profile.network, options_.test_resolver, config);
    if (guest.network_) config.network_fd = guest.network_->vm_fd();
    guest.vm_ = backend_->start(config);
    if (guest.network_) guest.network_->close_vm_fd();
    const auto spawned = SteadyClock::now();
    guest.timing_.setup_ms = elapsed_ms(accepted, spawned);
    guest.session_ = std::make_unique<GuestSession>(*guest.vm_, cancel);
    guest.vm_->restore_snapshot(source.state, kRestoreTimeout,
                                /*shared_memory_skipped=*/!source.memory.empty());
    guest.session_->resume_clone(spawned + kBootTimeout, /*new_identity=*/true);
    guest.timing_.boot_ms = elapsed_ms(spawned, SteadyClock::now());
    guest.from_snapshot_ = true;
    return guest;
  });
}

namespace {

// Copies `from` into a new file `to` of the same size, owned by `owner`;
// what is zero in it (holes, and pages of zeros) is left a hole.
void copy_sparse(int from, const std::string& from_path, const std::string& to, uid_t owner, gid_t group) {
  UniqueFd out(::open(to.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!out) throw_errno("open", to);
  struct stat info {};
  if (::fstat(from, &info) < 0) throw_errno("fstat", from_path);
  if (::ftruncate(out.get(), info.st_size) < 0) throw_errno("ftruncate", to);
  if (::fchown(out.get(), owner, group) < 0) throw_errno("fchown", to);
  std::vector<char> buffer(1 << 20);
  static const char kZeroPage[4096] = {};
  for (off_t at = 0; at < info.st_size;) {
    const off_t data = ::lseek(from, at, SEEK_DATA);
    if (data < 0 && errno == ENXIO) break;  // only a hole is left
    if (data < 0) throw_errno("lseek(SEEK_DATA)", from_path);
    off_t hole = ::lseek(from, data, SEEK_HOLE);
    if (hole < 0) hole = info.st_size;
    for (at = data; at < hole;) {
      const ssize_t n =
          ::pread(from, buffer.data(), static_cast<size_t>(std::min<off_t>(hole - at, buffer.size())), at);
      if (n < 0) throw_errno("read", from_path);
      if (n == 0) throw Error(ErrorCode::internal, from_path + " ended before its size");
      for (ssize_t page = 0; page < n; page += sizeof kZeroPage) {
        const size_t length = std::min<size_t>(sizeof kZeroPage, static_cast<size_t>(n - page));
        if (std::memcmp(buffer.data() + page, kZeroPage, length) == 0) continue;
        for (size_t written = 0; written < length;) {
          const ssize_t w = ::pwrite(out.get(), buffer.data() + page + written, length - written,
                                     at + page + static_cast<off_t>(written));
          if (w < 0 && errno == EINTR) continue;
          if (w <= 0) throw_errno("write", to);
          written += static_cast<size_t>(w);
        }
      }
      at += n;
    }
  }
}

}  // namespace

void Engine::bake_memory(const Profile& profile, const CopySource& source, const std::string& memory_path,
                         const std::string& state_path) {
  lasting_->run<bool>([&] {
    const Resolved resolved = resolve(profile);
    TempDir work = TempDir::create(options_.runtime_dir, "bake-");
    CopySource local = source;
    local.empty_layer = work.file("empty-layer.qcow2");  // over a draft's disk: not kept
    vmm::VmConfig config = copy_config(resolved, profile, local, work.path());
    config.stay_stopped = true;
    // Loaded through a shared mapping of tmpfs (a disk file's would cost a
    // block allocation per page: seconds), then copied beside the snapshot.
    TempDir memory_dir = TempDir::create("/dev/shm", "airlock-bake-");
    const std::string loaded = memory_dir.file("memory");
    UniqueFd memory(::open(loaded.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!memory) throw_errno("open", loaded);
    // Allocated ahead: the load then finds every page there, instead of
    // faulting one in per 4 KiB page written (tmpfs has no huge pages here),
    // seconds under a jailed QEMU.
    if (::posix_fallocate(memory.get(), 0, static_cast<off_t>(profile.memory_mb) << 20) != 0) {
      throw Error(ErrorCode::no_space, "/dev/shm has no room for a " + std::to_string(profile.memory_mb) +
                                           " MiB RAM file to rewrite the snapshot with");
    }
    config.memory_file = vmm::MemoryFileSpec{loaded, true, memory.get()};
    // The same devices as the source: a network device if it had one (its
    // stack never carries a packet: the guest does not run).
    std::unique_ptr<network::GuestNetwork> network =
        make_network(profile.network, options_.test_resolver, config);
    if (network) config.network_fd = network->vm_fd();
    std::unique_ptr<vmm::Vm> vm = backend_->start(config);
    if (network) network->close_vm_fd();
    vm->restore_snapshot(source.state, kRestoreTimeout, /*shared_memory_skipped=*/false);
    vm->save_snapshot(state_path);
    vm->destroy();
    struct stat owner {};
    if (::fstat(memory.get(), &owner) < 0) throw_errno("fstat", loaded);  // the VMM's user, now
    copy_sparse(memory.get(), loaded, memory_path, owner.st_uid, owner.st_gid);
    return true;
  });
}

ReadyGuest Engine::start_lasting_guest(const Profile& profile, const CancelToken* cancel) {
  return lasting_->run<ReadyGuest>([&] { return start_guest(profile, cancel); });
}

}  // namespace airlock::engine
