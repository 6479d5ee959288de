// airlock code, contexts: stateful code contexts of a sandbox (docs/snapshots.md, "Code contexts").
#include <cstdio>
#include <iostream>
#include <iterator>

#include "cli/daemon_client.h"
#include "cli/verbs.h"
#include "common/error.h"

namespace airlock::cli {

namespace {

// A cell's answer as a terminal shows it: what it printed, then what it
// displayed and its value (text, or a line saying what richer form came).
void print_cell(const nlohmann::json& cell) {
  std::cout << cell.value("stdout", "");
  std::cerr << cell.value("stderr", "");
  auto show = [](const nlohmann::json& data) {
    if (!data.is_object()) return;
    for (const auto& [mime, value] : data.items()) {
      if (mime.rfind("image/", 0) == 0 && value.is_string()) {
        std::cout << "[" << mime << ", " << value.get<std::string>().size() * 3 / 4 << " bytes]\n";
      }
    }
    if (data.contains("text/plain") && data["text/plain"].is_string()) {
      std::cout << data["text/plain"].get<std::string>() << "\n";
    }
  };
  for (const auto& display : cell.value("displays", nlohmann::json::array())) show(display);
  if (cell.contains("result") && !cell["result"].is_null()) show(cell["result"]);
  if (cell.contains("error") && cell["error"].is_object()) {
    const auto& error = cell["error"];
    const auto traceback = error.value("traceback", nlohmann::json::array());
    if (!traceback.empty()) {
      for (const auto& line : traceback) std::cerr << line.get<std::string>() << "\n";
    } else {
      std::cerr << error.value("name", "") << ": " << error.value("value", "") << "\n";
    }
  }
}

// A 404 for the context, not for its sandbox.
bool no_such_context(const Error& e) {
  return e.code() == ErrorCode::not_found &&
         std::string(e.what()).find("no code context") != std::string::npos;
}

int exit_code_of(const std::string& status) {
  if (status == "ok") return 0;
  if (status == "timeout") return 124;
  if (status == "interrupted") return 130;
  return 1;  // error, died: as an interpreter whose program failed
}

void add_code(CLI::App& app, Action& action) {
  struct Options {
    std::string id;
    std::string code;
    std::string context = "default";
    std::string language;
    int timeout_s = 30;
    bool restart = false;
    bool json = false;
    std::string socket;
  };
  auto options = std::make_shared<Options>();
  CLI::App* verb = app.add_subcommand(
      "code",
      "Run code in a stateful code context of a sandbox (made on first use); prints its output and "
      "the value of its last expression");
  verb->add_option("id", options->id, "Sandbox id")->required();
  verb->add_option("code", options->code, "The code ('-': read it from stdin)")->required();
  verb->add_option("--context", options->context, "The context's name (default: default)");
  verb->add_option("--lang", options->language,
                   "python or javascript, for a context made now (default: the sandbox's language)");
  verb->add_option("--timeout", options->timeout_s, "Seconds the cell may run (0: no limit; default 30)");
  verb->add_flag("--restart", options->restart, "Restart the context first (its variables are lost)");
  verb->add_flag("--json", options->json, "Print the cell's whole answer as JSON");
  add_socket_option(*verb, options->socket);
  verb->callback([&action, options] {
    action = [options] {
      const std::string socket = daemon_socket_path(options->socket);
      const std::string contexts = "/v1/sandboxes/" + options->id + "/contexts";
      const std::string context = contexts + "/" + options->context;
      std::string code = options->code;
      if (code == "-")
        code.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
      const std::string body = nlohmann::json{{"code", code}, {"timeout_s", options->timeout_s}}.dump();
      auto make = [&] {
        nlohmann::json request = {{"name", options->context}};
        if (!options->language.empty()) request["language"] = options->language;
        call_daemon(socket, "POST", contexts, request.dump());
      };
      if (options->restart) {
        try {
          call_daemon(socket, "POST", context + "/restart");
        } catch (const Error& e) {
          if (!no_such_context(e)) throw;
          make();
        }
      }
      nlohmann::json cell;
      try {
        cell = call_daemon(socket, "POST", context + "/run", body);
      } catch (const Error& e) {
        if (!no_such_context(e)) throw;
        make();
        cell = call_daemon(socket, "POST", context + "/run", body);
      }
      if (options->json) {
        std::cout << cell.dump() << "\n";
      } else {
        print_cell(cell);
      }
      return exit_code_of(cell.value("status", "error"));
    };
  });
}

void add_contexts(CLI::App& app, Action& action) {
  struct Options {
    std::string id;
    bool json = false;
    std::string socket;
  };
  auto options = std::make_shared<Options>();
  CLI::App* verb =
      app.add_subcommand("contexts", "List a sandbox's code contexts: name, language, state, cells run");
  verb->add_option("id", options->id, "Sandbox id")->required();
  verb->add_flag("--json", options->json, "Print the list as JSON");
  add_socket_option(*verb, options->socket);
  verb->callback([&action, options] {
    action = [options] {
      const nlohmann::json answer = call_daemon(daemon_socket_path(options->socket), "GET",
                                                "/v1/sandboxes/" + options->id + "/contexts");
      if (options->json) {
        std::cout << answer.dump() << "\n";
        return 0;
      }
      std::printf("%-20s %-11s %-9s %s\n", "NAME", "LANGUAGE", "STATE", "CELLS");
      for (const auto& context : answer.at("contexts")) {
        std::printf("%-20s %-11s %-9s %llu%s\n", context.value("name", "").c_str(),
                    context.value("language", "").c_str(), context.value("state", "").c_str(),
                    static_cast<unsigned long long>(context.value("execution_count", 0ULL)),
                    context.contains("reason") ? ("  " + context.value("reason", "")).c_str() : "");
      }
      return 0;
    };
  });
}

}  // namespace

void add_code_verbs(CLI::App& app, Action& action) {
  add_code(app, action);
  add_contexts(app, action);
}

}  // namespace airlock::cli
