#include "engine/engine.h"

namespace airlock::engine {

std::vector<std::string> guest_environment(const Language& language,
                                           const std::vector<std::pair<std::string, std::string>>& extra) {
  std::vector<std::pair<std::string, std::string>> merged = {
      {"PATH", "/usr/local/bin:/usr/bin:/bin"},
      {"HOME", kWorkDir},
      {"USER", "sandbox"},
      {"LANG", "C.UTF-8"},
  };
  auto set = [&merged](const std::string& name, const std::string& value) {
    for (auto& entry : merged) {
      if (entry.first == name) {
        entry.second = value;
        return;
      }
    }
    merged.emplace_back(name, value);
  };
  for (const auto& assignment : language.env) {
    auto [name, value] = parse_env_assignment(assignment);
    set(name, value);
  }
  for (const auto& [name, value] : extra) set(name, value);
  std::vector<std::string> env;
  for (const auto& [name, value] : merged) env.push_back(name + "=" + value);
  return env;
}

protocol::Exec program_exec(const Language& language, const RunRequest& limits, std::vector<std::string> argv,
                            const std::vector<std::pair<std::string, std::string>>& env, std::string cwd,
                            uint64_t stdout_limit, uint64_t stderr_limit, int timeout_s) {
  protocol::Exec exec;
  exec.argv = std::move(argv);
  std::vector<std::pair<std::string, std::string>> merged;
  for (const auto& assignment : limits.image_env) merged.push_back(parse_env_assignment(assignment));
  merged.insert(merged.end(), env.begin(), env.end());
  exec.env = guest_environment(language, merged);
  exec.cwd = std::move(cwd);
  exec.uid = kSandboxUid;
  exec.gid = kSandboxUid;
  exec.stdout_limit = stdout_limit;
  exec.stderr_limit = stderr_limit;
  exec.timeout_ms = static_cast<uint64_t>(timeout_s) * 1000;
  exec.max_processes = static_cast<uint64_t>(limits.max_processes);
  exec.max_open_files = static_cast<uint64_t>(limits.max_open_files);
  exec.disk_limit_bytes = static_cast<uint64_t>(limits.disk_mb) << 20;
  return exec;
}

}  // namespace airlock::engine
