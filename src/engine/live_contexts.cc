// A live sandbox's code contexts (code_context.h): the guest's agent holds
// them; each call here is one question to it, while the sandbox runs.
#include "common/error.h"
#include "engine/code_context.h"
#include "engine/languages.h"
#include "engine/live_sandbox.h"

namespace airlock::engine {

namespace {

// A shell sandbox's contexts are python's; the images hold one
// interpreter each, so another language's start fails with its "not found".
std::string default_language(const std::string& sandbox_language) {
  const std::string name = find_language(sandbox_language).name;
  return name == "javascript" ? "javascript" : "python";
}

}  // namespace

ContextInfo LiveSandbox::open_context(const ContextRequest& request) {
  const std::string language =
      request.language.empty() ? default_language(spec_.plan.request.language) : request.language;
  // Figures are drawn for a MIME bundle, never to a display there is not.
  std::vector<std::pair<std::string, std::string>> env;
  if (language == "python") env = {{"MPLBACKEND", "Agg"}};
  protocol::Exec exec = program_exec(find_language(language), spec_.plan.request, context_command(language),
                                     env, kWorkDir, 0, 0, 0);
  return operation([&](const std::shared_ptr<GuestMux>& mux) {
    try {
      return ContextClient(mux).start(request.name, language, std::move(exec));
    } catch (const Error& e) {
      if (e.code() != ErrorCode::conflict ||
          std::string(e.what()).find("did not start") == std::string::npos) {
        throw;
      }
      // Most often: this sandbox's image has no such interpreter.
      throw Error(ErrorCode::conflict, std::string(e.what()) + " (this sandbox runs the " +
                                           spec_.plan.profile.name() + " profile)");
    }
  });
}

std::vector<ContextInfo> LiveSandbox::contexts() {
  return operation(
      [&](const std::shared_ptr<GuestMux>& mux) { return ContextClient(mux).control("", "list"); });
}

ContextInfo LiveSandbox::context(const std::string& name) {
  for (auto& info : contexts()) {
    if (info.name == name) return info;
  }
  throw Error(ErrorCode::not_found, "no code context '" + name + "' in sandbox " + id_);
}

ContextInfo LiveSandbox::control_context(const std::string& name, const std::string& action) {
  auto answer = operation(
      [&](const std::shared_ptr<GuestMux>& mux) { return ContextClient(mux).control(name, action); });
  if (answer.size() != 1)
    throw Error(ErrorCode::vm, "the guest answered a context's " + action + " with a list");
  return answer.front();
}

CodeResult LiveSandbox::run_code(const std::string& name, const CodeRequest& request, CodeEventSink* sink,
                                 const CancelToken* cancel) {
  const auto paused = [this] {
    std::lock_guard lock(mutex_);
    return paused_;
  };
  return operation([&](const std::shared_ptr<GuestMux>& mux) {
    return ContextClient(mux).run(name, request, sink, cancel, paused);
  });
}

ContextInfo SandboxRegistry::open_context(const std::string& id, const ContextRequest& request) {
  return find(id)->open_context(request);
}

std::vector<ContextInfo> SandboxRegistry::contexts(const std::string& id) { return find(id)->contexts(); }

ContextInfo SandboxRegistry::context(const std::string& id, const std::string& name) {
  return find(id)->context(name);
}

ContextInfo SandboxRegistry::control_context(const std::string& id, const std::string& name,
                                             const std::string& action) {
  return find(id)->control_context(name, action);
}

CodeResult SandboxRegistry::run_code(const std::string& id, const std::string& name,
                                     const CodeRequest& request, CodeEventSink* sink,
                                     const CancelToken* cancel) {
  return find(id)->run_code(name, request, sink, cancel);
}

}  // namespace airlock::engine
