#pragma once

#include "guest/channel.h"
#include "protocol/messages.h"

namespace airlock::guest {

// Runs one program for an exec request and streams it over the channel:
// stdout/stderr as they come (capped), stdin as the host sends it, until the
// program exits or is killed (cancel, output limit, backstop timeout). Since
// the agent is PID 1, every other process in the VM belongs to the program,
// so ending a run kills them all (kill(-1)) and reaps every zombie.
// Returns false if the host hung up.
bool run_program(Channel& channel, uint32_t stream, const protocol::Exec& request);

}  // namespace airlock::guest
