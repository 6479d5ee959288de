// airlock ps: every sandbox, with its state, age, time left and memory.
#include <chrono>
#include <cstdio>
#include <iostream>

#include "cli/daemon_client.h"
#include "cli/verbs.h"

namespace airlock::cli {

namespace {

std::string seconds_text(int64_t ms) {
  if (ms < 0) return "-";
  const int64_t s = ms / 1000;
  if (s < 120) return std::to_string(s) + "s";
  if (s < 7200) return std::to_string(s / 60) + "m";
  return std::to_string(s / 3600) + "h";
}

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

void add_ps(CLI::App& app, Action& action) {
  struct Options {
    bool json = false;
    std::string socket;
  };
  auto options = std::make_shared<Options>();
  CLI::App* verb = app.add_subcommand("ps", "List sandboxes: id, language, state, age, ttl left, memory");
  verb->add_flag("--json", options->json, "Print the list as JSON");
  add_socket_option(*verb, options->socket);
  verb->callback([&action, options] {
    action = [options] {
      const nlohmann::json list = call_daemon(daemon_socket_path(options->socket), "GET", "/v1/sandboxes");
      if (options->json) {
        std::cout << list.dump() << "\n";
        return 0;
      }
      std::printf("%-35s %-10s %-12s %-8s %-5s %-8s %-7s %s\n", "ID", "LANGUAGE", "IMAGE", "STATE", "AGE",
                  "TTL LEFT", "MEMORY", "EXECS");
      const int64_t now = now_ms();
      for (const auto& sandbox : list.at("sandboxes")) {
        const bool stopped = sandbox.at("state") == "stopped";
        std::printf("%-35s %-10s %-12s %-8s %-5s %-8s %-7s %d\n", sandbox.at("id").get<std::string>().c_str(),
                    sandbox.at("language").get<std::string>().c_str(),
                    sandbox.value("image", sandbox.at("language").get<std::string>()).c_str(),
                    sandbox.at("state").get<std::string>().c_str(),
                    seconds_text(now - sandbox.at("created_at_ms").get<int64_t>()).c_str(),
                    stopped ? "-" : seconds_text(sandbox.at("expires_at_ms").get<int64_t>() - now).c_str(),
                    (std::to_string(sandbox.at("memory_mb").get<int>()) + "M").c_str(),
                    sandbox.at("execs").get<int>());
      }
      return 0;
    };
  });
}

}  // namespace airlock::cli
