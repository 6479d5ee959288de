#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "common/child_process.h"
#include "common/unique_fd.h"
#include "vmm/jail/jail.h"
#include "vmm/qmp_client.h"
#include "vmm/vm_backend.h"

namespace airlock::vmm {

// One QEMU process. Channels are socket pairs handed to QEMU as inherited
// fds, so there are no socket files to race on or leak; the per-run disk
// layer is a qcow2 overlay in the VM's work directory. The process is
// confined by a jail (vmm/jail) that outlives it: destroy() reaps QEMU first,
// then removes the jail's cgroup and directory.
class QemuVm final : public Vm {
 public:
  QemuVm(std::unique_ptr<jail::Jail> jail, ChildProcess process, UniqueFd channel, UniqueFd console,
         UniqueFd qmp);
  ~QemuVm() override;

  int channel_fd() const override { return channel_.get(); }
  int exit_fd() const override { return process_.pidfd(); }
  int console_fd() const override { return console_.get(); }
  void drain_console() override;
  std::string console_tail() const override { return console_tail_; }
  std::optional<std::string> exit_reason() override;
  void destroy() override;
  void save_snapshot(const std::string& state_path) override;
  void restore_snapshot(const std::string& state_path, std::chrono::milliseconds timeout,
                        bool shared_memory_skipped = true) override;

  void pause() override;
  void resume() override;
  LiveSnapshotTiming save_live_snapshot(const std::string& state_path,
                                        const std::function<void()>& while_stopped) override;
  std::string disk_layer() const override { return disk_layer_; }

  QmpClient& qmp(std::chrono::milliseconds timeout = std::chrono::seconds(5));
  pid_t pid() const { return process_.pid(); }

 private:
  std::unique_ptr<jail::Jail> jail_;
  ChildProcess process_;
  UniqueFd channel_;
  UniqueFd console_;
  UniqueFd qmp_socket_;
  std::unique_ptr<QmpClient> qmp_;
  std::string console_tail_;
  std::string disk_layer_;
  bool stays_stopped_ = false;  // VmConfig::stay_stopped
  friend class QemuBackend;
};

class QemuBackend final : public VmBackend {
 public:
  std::unique_ptr<Vm> start(const VmConfig& config) override;
  std::unique_ptr<QemuVm> start_qemu(const VmConfig& config);
};

}  // namespace airlock::vmm
