#pragma once

#include <string>
#include <vector>

namespace airlock::engine {

// How a language's code is placed and started inside its image.
struct Language {
  std::string name;                  // canonical: "python", "javascript", "shell"
  std::string code_path;             // where the code file is written in the guest
  std::vector<std::string> command;  // argv; the code file's path is its last element
  std::vector<std::string> env;      // language-specific defaults, overridable by the user
  // Run once in a template before its snapshot, so every clone starts with
  // the interpreter and common modules in the guest's page cache. Our own
  // code, never the user's; it writes nothing.
  std::vector<std::string> warmup;
  // An interpreter started in the template and snapshotted with it, waiting
  // for a program on its control socket; empty if the language has none.
  std::vector<std::string> prestart;
  // A program of ours (the code for code_path) that the prestarted
  // interpreter (or the pool's, pool_prestart) runs as a warm-up job, before
  // the template's snapshot and in each pooled guest before it is handed
  // out, so a request's path
  // through the interpreter (read, compile, run, print) is already
  // translated by the emulator and its pages written. Empty: none.
  std::string warmup_program;
  // An interpreter a pool starts in each guest *after* restore, for
  // runtimes whose process state must never come from a snapshot (V8's
  // Math.random and OpenSSL's DRBG would repeat across clones).
  std::vector<std::string> pool_prestart;
  // Environment variables an already running interpreter cannot honour: a
  // run that sets any of these (by prefix) starts a fresh interpreter instead.
  // Besides the language's own, what the C library and the dynamic loader
  // read only at a process's start (LD_PRELOAD and the other LD_*,
  // GLIBC_TUNABLES, MALLOC_*) and TZ, which interpreters cache.
  std::vector<std::string> startup_env_prefixes;
  // Written at code_path before `prestart` starts (bash's BASH_ENV: our
  // code that makes it wait), and what else that start's environment has.
  std::string prestart_file = {};
  std::vector<std::string> prestart_env = {};
  // How the agent writes the prestarted interpreter its jobs
  // (protocol::Exec::job_format).
  std::string job_format = "json";
};

// Accepts the canonical names and common aliases (py, js, node, sh, bash).
// Throws Error(invalid_argument) listing the supported languages.
const Language& find_language(const std::string& name);
std::string supported_languages();
// Each language and the program in an image that runs its code (what an
// imported image must have for it), in the table's order.
std::vector<std::pair<std::string, std::string>> language_programs();

}  // namespace airlock::engine
