#include "engine/languages.h"

#include <array>
#include <utility>

#include "common/error.h"

namespace airlock::engine {

namespace {

const std::array<Language, 3>& languages() {
  static const std::array<Language, 3> table = {{
      {"python",
       "/home/sandbox/main.py",
       {"/usr/bin/python3", "/home/sandbox/main.py"},
       // Unbuffered, so output streams as it is printed rather than at exit.
       {"PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1"},
       {"/usr/bin/python3", "-c",
        "import json, re, os, sys, math, random, collections, itertools, functools, datetime, "
        "pathlib, subprocess, io, base64, hashlib, string, time"}},
      {"javascript",
       "/home/sandbox/main.js",
       {"/usr/bin/node", "/home/sandbox/main.js"},
       {},
       {"/usr/bin/node", "-e", "require('fs'); require('path'); require('util')"}},
      {"shell",
       "/home/sandbox/main.sh",
       {"/bin/bash", "/home/sandbox/main.sh"},
       {},
       {"/bin/bash", "-c", "cat /dev/null; ls / >/dev/null"}},
  }};
  return table;
}

const std::pair<const char*, const char*> kAliases[] = {
    {"py", "python"},         {"python3", "python"}, {"js", "javascript"}, {"node", "javascript"},
    {"nodejs", "javascript"}, {"sh", "shell"},       {"bash", "shell"},
};

}  // namespace

std::string supported_languages() {
  std::string names;
  for (const auto& language : languages()) names += (names.empty() ? "" : ", ") + language.name;
  return names;
}

const Language& find_language(const std::string& name) {
  std::string canonical = name;
  for (const auto& [alias, target] : kAliases) {
    if (name == alias) canonical = target;
  }
  for (const auto& language : languages()) {
    if (language.name == canonical) return language;
  }
  throw Error(ErrorCode::invalid_argument,
              "unknown language '" + name + "' (supported: " + supported_languages() + ")");
}

}  // namespace airlock::engine
