#pragma once

// How a guest is warmed before it serves: in the template before its
// snapshot, and in every pooled clone before it is handed out. Under TCG a
// clone's emulator translates afresh, so what these take is not translated
// on a request's time (docs/performance.md).

#include <string>
#include <vector>

#include "engine/guest_session.h"
#include "engine/languages.h"
#include "protocol/messages.h"

namespace airlock::engine {

// An exec of Airlock's own code (warm-up, prestarted interpreter) as the sandbox user.
protocol::Exec own_exec(const Language& language, const std::vector<std::string>& argv);
// The language's warm-up command; throws Error(vm) if it fails.
void run_warmup(GuestSession& session, const Language& language);
// A request's exec path with a large message and stdin; throws Error(vm) if it fails.
void warm_exec_path(GuestSession& session, const Language& language);
// Starts a prestarted interpreter (`argv`: the template's language.prestart,
// or a pool's language.pool_prestart), with its file written first, and
// waits until it is ready.
void start_prestarted(GuestSession& session, const Language& language, const std::vector<std::string>& argv);
// Our warm-up program through the prestarted interpreter, which stays waiting.
void warm_prestarted(GuestSession& session, const Language& language);

}  // namespace airlock::engine
