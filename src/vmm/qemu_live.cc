// What a running QEMU VM does for a live sandbox: pause, resume, and a
// snapshot taken while it runs (QEMU's pre-copy migration into a file).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/error.h"
#include "vmm/qemu_backend.h"

namespace airlock::vmm {

namespace {

using nlohmann::json;

// The guest's last dirty pages must fit in this pause; QEMU copies RAM ahead
// until they do (or gives up converging and stops it anyway, see below).
constexpr int kDowntimeLimitMs = 30;
// A file on the host's disk takes the stream as fast as QEMU writes it;
// QEMU's default (128 MiB/s) would make a 256 MiB guest's first pass last
// two seconds.
constexpr int64_t kMaxBandwidth = int64_t{16} << 30;
constexpr auto kSnapshotTimeout = std::chrono::seconds(60);

int64_t ms_since(SteadyClock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - start).count();
}

}  // namespace

void QemuVm::pause() { qmp().execute("stop"); }

void QemuVm::resume() { qmp().execute("cont"); }

LiveSnapshotTiming QemuVm::save_live_snapshot(const std::string& state_path,
                                              const std::function<void()>& while_stopped) {
  UniqueFd state(::open(state_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!state) throw_errno("open", state_path);
  QmpClient& monitor = qmp();
  // A clone's RAM is a private copy-on-write mapping: all of it goes into
  // the stream (x-ignore-shared, set when it was restored, would skip it).
  monitor.execute(
      "migrate-set-capabilities",
      {{"capabilities", json::array({{{"capability", "x-ignore-shared"}, {"state", false}},
                                     {{"capability", "pause-before-switchover"}, {"state", true}}})}});
  monitor.execute("migrate-set-parameters",
                  {{"max-bandwidth", kMaxBandwidth}, {"downtime-limit", kDowntimeLimitMs}});
  monitor.pass_fd("user-snapshot", state.get());
  const auto started = SteadyClock::now();
  LiveSnapshotTiming timing;
  bool copied = false;
  try {
    monitor.execute("migrate", {{"uri", "fd:user-snapshot"}});
    // The first pass copies every page while the guest runs; later passes
    // what it changed meanwhile. If it changes pages faster than that
    // converges, it is stopped anyway after this long.
    const auto converge_by = started + std::chrono::seconds(5);
    bool forced = false;
    for (;;) {
      json status = monitor.execute("query-migrate");
      const std::string phase = status.value("status", "");
      if (phase == "pre-switchover" && !copied) {
        // Stopped now: what the guest's disk holds matches its RAM.
        copied = true;
        while_stopped();
        monitor.execute("migrate-continue", {{"state", "pre-switchover"}});
      } else if (phase == "completed") {
        const auto completed = SteadyClock::now();
        monitor.execute("cont");
        timing.paused_ms = status.value("downtime", int64_t{0}) + ms_since(completed);
        break;
      } else if (phase == "failed" || phase == "cancelled") {
        throw Error(ErrorCode::vm, "the snapshot failed: " + status.value("error-desc", phase));
      }
      if (!forced && SteadyClock::now() > converge_by) {
        // Allow the rest in one pause, whatever it costs, rather than copy forever.
        monitor.execute("migrate-set-parameters", {{"downtime-limit", 60'000}});
        forced = true;
      }
      if (SteadyClock::now() > started + kSnapshotTimeout) {
        throw Error(ErrorCode::vm, "the snapshot did not finish within 60 s");
      }
      ::usleep(1000);
    }
  } catch (const Error&) {
    // Whatever failed, the guest goes on running as it was.
    try {
      monitor.execute("migrate_cancel");
      for (int i = 0; i < 1000; ++i) {
        const std::string phase = monitor.execute("query-migrate").value("status", "");
        if (phase != "active" && phase != "setup" && phase != "pre-switchover" && phase != "device" &&
            phase != "cancelling")
          break;
        if (phase == "pre-switchover") monitor.execute("migrate-continue", {{"state", "pre-switchover"}});
        ::usleep(1000);
      }
      if (!monitor.execute("query-status").value("running", false)) monitor.execute("cont");
    } catch (const Error&) {
      // QEMU itself is gone or wedged; the sandbox notices its VM.
    }
    ::unlink(state_path.c_str());
    throw;
  }
  timing.total_ms = ms_since(started);
  if (::fsync(state.get()) < 0) throw_errno("fsync", state_path);
  struct stat info {};
  if (::fstat(state.get(), &info) == 0) timing.state_bytes = static_cast<uint64_t>(info.st_size);
  return timing;
}

}  // namespace airlock::vmm
