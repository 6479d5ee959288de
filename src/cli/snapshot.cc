// airlock snapshot, snapshots, restore, fork, rm-snapshot: user snapshots of
// live sandboxes and the sandboxes that go on from them (docs/snapshots.md).
#include <cstdio>
#include <iostream>

#include "cli/daemon_client.h"
#include "cli/verbs.h"
#include "common/error.h"

namespace airlock::cli {

namespace {

std::string size_text(uint64_t bytes) {
  if (bytes < (10u << 20)) return std::to_string(bytes >> 10) + "K";
  return std::to_string(bytes >> 20) + "M";
}

std::string age_text(int64_t created_ms) {
  const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  const int64_t s = (now - created_ms) / 1000;
  if (s < 120) return std::to_string(s) + "s ago";
  if (s < 7200) return std::to_string(s / 60) + "m ago";
  if (s < 172800) return std::to_string(s / 3600) + "h ago";
  return std::to_string(s / 86400) + "d ago";
}

void add_take(CLI::App& app, Action& action) {
  struct Options {
    std::string id;
    std::string name;
    std::vector<std::string> labels;
    bool json = false;
    std::string socket;
  };
  auto options = std::make_shared<Options>();
  CLI::App* verb = app.add_subcommand(
      "snapshot", "Snapshot a running sandbox (memory, devices, disk); it goes on running. Prints its id");
  verb->add_option("id", options->id, "Sandbox id")->required();
  verb->add_option("--name", options->name, "A unique name to restore it by");
  verb->add_option("--label", options->labels, "KEY=VALUE (repeatable)");
  verb->add_flag("--json", options->json, "Print the snapshot as JSON");
  add_socket_option(*verb, options->socket);
  verb->callback([&action, options] {
    action = [options] {
      nlohmann::json body = nlohmann::json::object();
      if (!options->name.empty()) body["name"] = options->name;
      nlohmann::json labels = nlohmann::json::object();
      for (const auto& label : options->labels) {
        const size_t equals = label.find('=');
        if (equals == std::string::npos) {
          std::cerr << "airlock: --label takes KEY=VALUE, not '" << label << "'\n";
          return kAirlockErrorExit;
        }
        labels[label.substr(0, equals)] = label.substr(equals + 1);
      }
      if (!labels.empty()) body["labels"] = labels;
      const nlohmann::json snapshot = call_daemon(daemon_socket_path(options->socket), "POST",
                                                  "/v1/sandboxes/" + options->id + "/snapshots", body.dump());
      if (options->json) {
        std::cout << snapshot.dump() << "\n";
      } else {
        std::cout << snapshot.at("id").get<std::string>() << "\n";
      }
      return 0;
    };
  });
}

void add_list(CLI::App& app, Action& action) {
  struct Options {
    bool json = false;
    bool verify = false;
    std::string socket;
  };
  auto options = std::make_shared<Options>();
  CLI::App* verb =
      app.add_subcommand("snapshots", "List snapshots: name, id, parent, language, size, created, digest");
  verb->add_flag("--json", options->json, "Print the list as JSON");
  verb->add_flag(
      "--verify", options->verify,
      "Digest every file of each snapshot again and say whether it is whole (exit 1 if one is not)");
  add_socket_option(*verb, options->socket);
  verb->callback([&action, options] {
    action = [options] {
      const std::string socket = daemon_socket_path(options->socket);
      const nlohmann::json list = call_daemon(socket, "GET", "/v1/snapshots");
      if (options->verify) {
        int broken = 0;
        for (const auto& snapshot : list.at("snapshots")) {
          const std::string id = snapshot.at("id");
          try {
            call_daemon(socket, "POST", "/v1/snapshots/" + id + "/verify");
            std::printf("%-20s %-29s ok\n", snapshot.at("name").get<std::string>().c_str(), id.c_str());
          } catch (const Error& e) {
            ++broken;
            std::printf("%-20s %-29s %s\n", snapshot.at("name").get<std::string>().c_str(), id.c_str(),
                        e.what());
          }
        }
        return broken == 0 ? 0 : 1;
      }
      if (options->json) {
        std::cout << list.dump() << "\n";
        return 0;
      }
      std::printf("%-20s %-29s %-29s %-10s %-6s %-9s %s\n", "NAME", "ID", "PARENT", "LANGUAGE", "SIZE",
                  "CREATED", "DIGEST");
      for (const auto& snapshot : list.at("snapshots")) {
        const std::string parent =
            snapshot.at("parent").is_string() ? snapshot["parent"].get<std::string>() : "-";
        std::printf("%-20s %-29s %-29s %-10s %-6s %-9s %s\n", snapshot.at("name").get<std::string>().c_str(),
                    snapshot.at("id").get<std::string>().c_str(), parent.c_str(),
                    snapshot.at("language").get<std::string>().c_str(),
                    size_text(snapshot.at("size_bytes").get<uint64_t>()).c_str(),
                    age_text(snapshot.at("created_at_ms").get<int64_t>()).c_str(),
                    snapshot.at("digest").get<std::string>().substr(0, 19).c_str());
      }
      return 0;
    };
  });
}

void add_restore(CLI::App& app, Action& action) {
  struct Options {
    std::string snapshot;
    int ttl = 0;
    int idle_timeout = 0;
    bool json = false;
    std::string socket;
  };
  auto options = std::make_shared<Options>();
  CLI::App* verb =
      app.add_subcommand("restore", "A new sandbox that goes on from a snapshot, as it was. Prints its id");
  verb->add_option("snapshot", options->snapshot, "Snapshot id or name")->required();
  verb->add_option("--ttl", options->ttl, "Its lifetime in seconds (default: the source's)")
      ->check(CLI::Range(1, 86400));
  verb->add_option("--idle-timeout", options->idle_timeout, "Seconds without activity before it is destroyed")
      ->check(CLI::Range(1, 86400));
  verb->add_flag("--json", options->json, "Print the sandbox as JSON");
  add_socket_option(*verb, options->socket);
  verb->callback([&action, options] {
    action = [options] {
      nlohmann::json body = nlohmann::json::object();
      if (options->ttl > 0) body["ttl_s"] = options->ttl;
      if (options->idle_timeout > 0) body["idle_timeout_s"] = options->idle_timeout;
      const nlohmann::json sandbox =
          call_daemon(daemon_socket_path(options->socket), "POST",
                      "/v1/snapshots/" + percent_encode(options->snapshot) + "/restore", body.dump());
      std::cout << (options->json ? sandbox.dump() : sandbox.at("id").get<std::string>()) << "\n";
      return 0;
    };
  });
}

void add_fork(CLI::App& app, Action& action) {
  struct Options {
    std::string id;
    int count = 1;
    bool json = false;
    std::string socket;
  };
  auto options = std::make_shared<Options>();
  CLI::App* verb = app.add_subcommand(
      "fork", "Make N live copies of a sandbox as it is now. Prints one line per copy: its id, or its error");
  verb->add_option("id", options->id, "Sandbox id")->required();
  verb->add_option("-n,--count", options->count, "How many copies (1-64)")->check(CLI::Range(1, 64));
  verb->add_flag("--json", options->json, "Print the answer as JSON");
  add_socket_option(*verb, options->socket);
  verb->callback([&action, options] {
    action = [options] {
      const nlohmann::json answer =
          call_daemon(daemon_socket_path(options->socket), "POST", "/v1/sandboxes/" + options->id + "/fork",
                      nlohmann::json{{"count", options->count}}.dump());
      if (options->json) std::cout << answer.dump() << "\n";
      int failed = 0;
      for (const auto& copy : answer.at("copies")) {
        if (copy.contains("sandbox")) {
          if (!options->json) std::cout << copy["sandbox"].at("id").get<std::string>() << "\n";
        } else {
          ++failed;
          if (!options->json)
            std::cout << "error: " << copy["error"].at("message").get<std::string>() << "\n";
        }
      }
      return failed == 0 ? 0 : 1;
    };
  });
}

void add_remove(CLI::App& app, Action& action) {
  struct Options {
    std::string snapshot;
    bool json = false;
    std::string socket;
  };
  auto options = std::make_shared<Options>();
  CLI::App* verb =
      app.add_subcommand("rm-snapshot", "Delete a snapshot (refused while a sandbox made from it lives)");
  verb->add_option("snapshot", options->snapshot, "Snapshot id or name")->required();
  verb->add_flag("--json", options->json, "Print the deleted snapshot as JSON");
  add_socket_option(*verb, options->socket);
  verb->callback([&action, options] {
    action = [options] {
      const nlohmann::json snapshot = call_daemon(daemon_socket_path(options->socket), "DELETE",
                                                  "/v1/snapshots/" + percent_encode(options->snapshot));
      if (options->json) std::cout << snapshot.dump() << "\n";
      return 0;
    };
  });
}

}  // namespace

void add_snapshot_verbs(CLI::App& app, Action& action) {
  add_take(app, action);
  add_list(app, action);
  add_restore(app, action);
  add_fork(app, action);
  add_remove(app, action);
}

void add_pause_verbs(CLI::App& app, Action& action) {
  for (const std::string name : {"pause", "resume"}) {
    struct Options {
      std::string id;
      bool json = false;
      std::string socket;
    };
    auto options = std::make_shared<Options>();
    CLI::App* verb = app.add_subcommand(
        name, name == "pause" ? "Pause a sandbox, its memory kept" : "Let a paused sandbox run again");
    verb->add_option("id", options->id, "Sandbox id")->required();
    verb->add_flag("--json", options->json, "Print the sandbox as JSON");
    add_socket_option(*verb, options->socket);
    verb->callback([&action, options, name] {
      action = [options, name] {
        const nlohmann::json sandbox = call_daemon(daemon_socket_path(options->socket), "POST",
                                                   "/v1/sandboxes/" + options->id + "/" + name);
        if (options->json) std::cout << sandbox.dump() << "\n";
        return 0;
      };
    });
  }
}

}  // namespace airlock::cli
