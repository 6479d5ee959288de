#pragma once

namespace airlock::netstack {

// Narrows this process to the system calls a running network stack makes
// (an allowlist; anything else kills the process), once it has set itself
// up. `host_network`: a `full` stack, which opens sockets to the internet;
// a restricted one opens nothing but the Unix sockets libslirp connects to
// our listeners. Throws Error(io) if the filter cannot be loaded.
void restrict_system_calls(bool host_network);

}  // namespace airlock::netstack
