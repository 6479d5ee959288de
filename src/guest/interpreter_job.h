#pragma once

#include <string>

#include "protocol/messages.h"

namespace airlock::guest {

// The job a prestarted interpreter gets on its control socket for
// `request` (a warm-up job if `warm`), in its `format`
// (protocol::Exec::job_format): "json", one line {"path","argv","env","cwd"}
// (plus "warm":true); "shell", a line with a byte count and then that many
// bytes of bash assignments (__airlock_warm, __airlock_env, __airlock_args:
// argv after the script, __airlock_cwd, __airlock_hostname), every byte outside printable ASCII
// written as \xHH inside $'...'.
std::string job_line(const protocol::Exec& request, bool warm, const std::string& format);

// The code file of `request`'s job: the last of argv for "json" (the
// interpreter's code path), the script, argv[1], for "shell".
std::string job_code_path(const protocol::Exec& request, const std::string& format);

}  // namespace airlock::guest
