// airlock mcp: the MCP server for LLM clients (docs/mcp.md). It is a Node
// program on the official MCP SDK (src/mcp), so this verb finds node, the
// server and airlockd, and becomes the server: the MCP host's stdio (or its
// signals) reach it directly.
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <vector>

#include "cli/verbs.h"
#include "common/error.h"
#include "engine/paths.h"

namespace airlock::cli {
namespace {

std::string env_or(const char* name, const std::string& fallback) {
  const char* value = std::getenv(name);
  return value && *value ? value : fallback;
}

struct McpOptions {
  std::string listen;
  std::string token_file;
  int output_cap = 32768;
  int session_idle_timeout_s = 1800;
  int max_sessions = 32;
  bool no_autostart = false;
  std::string socket;
};

[[noreturn]] void become_server(const McpOptions& options) {
  const std::filesystem::path dir = env_or("AIRLOCK_MCP_DIR", AIRLOCK_MCP_DIR);
  const std::filesystem::path script = dir / "airlock-mcp.mjs";
  if (!std::filesystem::exists(script)) {
    throw Error(ErrorCode::unavailable,
                "the MCP server is not at " + script.string() + " (set AIRLOCK_MCP_DIR)");
  }
  if (!std::filesystem::exists(dir / "node_modules" / "@modelcontextprotocol" / "sdk")) {
    throw Error(ErrorCode::unavailable, "the MCP server's packages are not installed in " +
                                            (dir / "node_modules").string() + ": run scripts/setup");
  }
  std::vector<std::string> args = {"node",
                                   script.string(),
                                   "--airlockd",
                                   env_or("AIRLOCK_DAEMON", engine::executable_dir() + "/airlockd"),
                                   "--output-cap",
                                   std::to_string(options.output_cap),
                                   "--session-idle-timeout",
                                   std::to_string(options.session_idle_timeout_s),
                                   "--max-sessions",
                                   std::to_string(options.max_sessions)};
  // AIRLOCK_URL (TCP) wins over the socket, as for the SDK; the server reads it.
  if (!std::getenv("AIRLOCK_URL") || !options.socket.empty()) {
    args.insert(args.end(), {"--socket", daemon_socket_path(options.socket)});
  }
  if (!options.listen.empty()) args.insert(args.end(), {"--listen", options.listen});
  if (!options.token_file.empty()) args.insert(args.end(), {"--token-file", options.token_file});
  if (options.no_autostart) args.emplace_back("--no-autostart");
  std::vector<char*> argv;
  for (auto& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  ::execvp("node", argv.data());
  throw Error(ErrorCode::unavailable,
              std::string("cannot run node (") + std::strerror(errno) +
                  "): the MCP server needs Node.js 18 or later (scripts/install-deps)");
}

}  // namespace

void add_mcp(CLI::App& app, Action& action) {
  auto options = std::make_shared<McpOptions>();
  CLI::App* verb =
      app.add_subcommand("mcp", "Serve airlockd's sandboxes to LLM clients over MCP (stdio, or --listen)");
  verb->add_option("--listen", options->listen,
                   "Serve Streamable HTTP on loopback, e.g. 127.0.0.1:8720 (clients send a bearer token)");
  verb->add_option(
      "--token-file", options->token_file,
      "The bearer token for --listen (made, mode 600, if missing; default <runtime dir>/mcp.token)");
  verb->add_option("--output-cap", options->output_cap, "Bytes of program output per tool call")
      ->check(CLI::Range(1024, 1 << 20));
  verb->add_option("--session-idle-timeout", options->session_idle_timeout_s,
                   "Seconds an HTTP session may go unused before it ends (its sandboxes destroyed)")
      ->check(CLI::Range(10, 86400 * 7));
  verb->add_option("--max-sessions", options->max_sessions, "HTTP sessions at once")
      ->check(CLI::Range(1, 1024));
  verb->add_flag("--no-autostart", options->no_autostart,
                 "Fail when no airlockd answers, instead of starting a private one");
  add_socket_option(*verb, options->socket);
  verb->callback([&action, options] { action = [options]() -> int { become_server(*options); }; });
}

}  // namespace airlock::cli
