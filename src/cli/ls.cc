// airlock ls: a directory of a sandbox, one entry a line (mode, size,
// modification time, name; a / after a directory, a symlink's target
// after " -> " as `ls -l` shows it).
#include <ctime>
#include <iostream>

#include "cli/daemon_client.h"
#include "cli/verbs.h"

namespace airlock::cli {

namespace {

std::string mode_text(const std::string& type, unsigned mode) {
  const char kinds[] = {type == "directory" ? 'd' : type == "symlink" ? 'l' : type == "file" ? '-' : '?'};
  std::string text(kinds, 1);
  const char* letters = "rwxrwxrwx";
  for (int bit = 8; bit >= 0; --bit) text += (mode >> bit) & 1 ? letters[8 - bit] : '-';
  return text;
}

std::string time_text(int64_t unix_ms) {
  const time_t seconds = static_cast<time_t>(unix_ms / 1000);
  tm parts{};
  ::gmtime_r(&seconds, &parts);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%d %H:%M", &parts);
  return buffer;
}

}  // namespace

void add_ls(CLI::App& app, Action& action) {
  struct Options {
    std::string id;
    std::string path = "/home/sandbox";
    bool json = false;
    std::string socket;
  };
  auto options = std::make_shared<Options>();
  CLI::App* verb = app.add_subcommand("ls", "List a directory of a sandbox: airlock ls ID [PATH]");
  verb->add_option("id", options->id, "Sandbox id")->required();
  verb->add_option("path", options->path, "Absolute path in the sandbox")->capture_default_str();
  verb->add_flag("--json", options->json, "Print the listing as JSON");
  add_socket_option(*verb, options->socket);
  verb->callback([&action, options] {
    action = [options] {
      const nlohmann::json listing =
          call_daemon(daemon_socket_path(options->socket), "GET",
                      "/v1/sandboxes/" + options->id + "/list?path=" + percent_encode(options->path));
      if (options->json) {
        std::cout << listing.dump() << "\n";
        return 0;
      }
      for (const auto& entry : listing.at("entries")) {
        const std::string type = entry.at("type").get<std::string>();
        std::cout << mode_text(type, entry.at("mode").get<unsigned>()) << " "
                  << entry.at("size").get<uint64_t>() << " " << time_text(entry.at("mtime_ms").get<int64_t>())
                  << " " << entry.at("name").get<std::string>();
        if (type == "directory") std::cout << "/";
        if (type == "symlink") std::cout << " -> " << entry.value("target", std::string());
        std::cout << "\n";
      }
      if (listing.at("truncated").get<bool>()) std::cerr << "airlock: (more entries than shown)\n";
      return 0;
    };
  });
}

}  // namespace airlock::cli
