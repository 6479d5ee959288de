#pragma once

// The sandbox verbs of `airlock`, one file each (cp.cc, create.cc, exec.cc,
// kill.cc, logs.cc, ls.cc, port.cc, ps.cc, rm.cc, touch.cc), all speaking airlockd's API (docs/api.yaml).
// Each adds its subcommand to `app` and sets `action` to what runs when it is parsed; an action returns the
// process's exit code.

#include <CLI/CLI.hpp>
#include <functional>
#include <string>

namespace airlock::cli {

using Action = std::function<int()>;

// What `airlock` exits with when Airlock itself failed, as docker does.
inline constexpr int kAirlockErrorExit = 125;

void add_cp(CLI::App& app, Action& action);
void add_create(CLI::App& app, Action& action);
void add_exec(CLI::App& app, Action& action);
void add_kill(CLI::App& app, Action& action);
void add_logs(CLI::App& app, Action& action);
void add_ls(CLI::App& app, Action& action);
void add_port(CLI::App& app, Action& action);
void add_ps(CLI::App& app, Action& action);
void add_rm(CLI::App& app, Action& action);
void add_touch(CLI::App& app, Action& action);
// snapshot, snapshots, restore, fork, rm-snapshot (snapshot.cc); pause, resume (snapshot.cc).
void add_snapshot_verbs(CLI::App& app, Action& action);
void add_pause_verbs(CLI::App& app, Action& action);
// code, contexts (code.cc).
void add_code_verbs(CLI::App& app, Action& action);
// image import, image ls, image rm (image.cc): images users bring.
void add_image_verbs(CLI::App& app, Action& action);
// mcp: the MCP server for LLM clients (mcp.cc runs src/mcp under node).
void add_mcp(CLI::App& app, Action& action);

// airlockd's socket: `option` (--socket), else $AIRLOCK_SOCKET, else <runtime dir>/airlockd.sock.
std::string daemon_socket_path(const std::string& option);
// The --socket option every verb takes.
void add_socket_option(CLI::App& verb, std::string& socket);

}  // namespace airlock::cli
