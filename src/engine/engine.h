#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "engine/guest_session.h"
#include "engine/images.h"
#include "engine/languages.h"
#include "engine/run_request.h"
#include "engine/run_result.h"
#include "engine/template_store.h"
#include "vmm/accel_probe.h"
#include "vmm/vm_backend.h"

namespace airlock::engine {

struct EngineOptions {
  std::string manifest_path;  // empty: find_manifest's search
  std::string cache_dir;      // empty: default_cache_dir()
  std::string runtime_dir;    // empty: default_runtime_dir()
  // One-line notices for the user (e.g. falling back from KVM to TCG).
  std::function<void(const std::string&)> notice;
};

// Runs requests, each in a fresh VM that is destroyed afterwards with all it
// used. Errors in the request itself throw Error(invalid_argument) before any
// VM starts; everything that happens after is reported in the RunResult.
class Engine {
 public:
  explicit Engine(EngineOptions options, std::unique_ptr<vmm::VmBackend> backend = nullptr);

  RunResult run(const RunRequest& request, OutputSink* sink = nullptr, const CancelToken* cancel = nullptr);

  // The accelerator a run with this choice would use (probing if needed).
  vmm::AccelDecision accel_for(vmm::AccelChoice choice, const vmm::KernelImage& kernel);

 private:
  std::string template_name(const Language& language, const vmm::KernelImage& kernel,
                            const std::string& rootfs, vmm::Accel accel, int memory_mb);
  // Finds or builds the template snapshot for a profile: boot, warm the
  // interpreter's files into the page cache, save. Throws if that fails.
  TemplatePaths ensure_template(const std::string& name, const Language& language,
                                const vmm::KernelImage& kernel, const std::string& rootfs, vmm::Accel accel,
                                int memory_mb, const CancelToken* cancel);

  EngineOptions options_;
  std::optional<TemplateStore> templates_;
  std::unique_ptr<vmm::VmBackend> backend_;
  std::optional<ImageCatalog> catalog_;
  std::optional<vmm::AccelDecision> automatic_accel_;
};

}  // namespace airlock::engine
