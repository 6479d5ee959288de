// Stateful code contexts of a sandbox (docs/snapshots.md, "Code contexts"),
// through a real airlockd: python and javascript interpreters in real VMs.

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <future>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "common/unique_fd.h"
#include "engine/sandbox_json.h"
#include "support/daemon_fixture.h"
#include "support/test_daemon.h"

namespace airlock::testing {
namespace {

using nlohmann::json;

// The base64 alphabet's decoding, enough to check an image's first bytes.
std::string decode_base64(const std::string& text) {
  static const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string bytes;
  uint32_t bits = 0;
  int count = 0;
  for (char c : text) {
    const size_t value = alphabet.find(c);
    if (value == std::string::npos) break;
    bits = (bits << 6) | static_cast<uint32_t>(value);
    count += 6;
    if (count >= 8) {
      count -= 8;
      bytes.push_back(static_cast<char>((bits >> count) & 0xFF));
    }
  }
  return bytes;
}

class CodeContexts : public DaemonFixture {
 protected:
  bool start_daemon() {
    return daemon_->start({"--pool-size", "0", "--snapshot-dir", (dir_ / "snapshots").string()});
  }
  json call(const std::string& method, const std::string& path, const std::string& body, int expected) {
    auto reply = daemon_->request({"-X", method, "-H", "Content-Type: application/json", "--data-binary",
                                   body, "http://airlockd" + path});
    EXPECT_EQ(reply.status, expected) << method << " " << path << " " << body << ": " << reply.body;
    return json::parse(reply.body, nullptr, false);
  }
  std::string sandbox(const std::string& language) {
    return call("POST", "/v1/sandboxes", json{{"language", language}, {"ttl_s", 600}}.dump(), 201)["id"];
  }
  json open(const std::string& id, json request) {
    return call("POST", "/v1/sandboxes/" + id + "/contexts", request.dump(), 201);
  }
  // A cell that must answer 200 (a result, whatever its status).
  json run(const std::string& id, const std::string& context, const std::string& code,
           json extra = json::object()) {
    extra["code"] = code;
    return call("POST", "/v1/sandboxes/" + id + "/contexts/" + context + "/run", extra.dump(), 200);
  }
  // The value a cell's last expression shows.
  std::string value(const std::string& id, const std::string& context, const std::string& code) {
    const json cell = run(id, context, code);
    EXPECT_EQ(cell["status"], "ok") << code << ": " << cell.dump();
    return cell["text"].is_string() ? cell["text"].get<std::string>() : "(no value)";
  }
  json context(const std::string& id, const std::string& name) {
    return call("GET", "/v1/sandboxes/" + id + "/contexts/" + name, "", 200);
  }
};

TEST_F(CodeContexts, APythonContextKeepsItsVariablesAndAnswersInMimeBundles) {
  ASSERT_TRUE(start_daemon());
  const std::string id = sandbox("python");
  const json opened = open(id, {{"name", "c1"}});
  EXPECT_EQ(opened["name"], "c1");
  EXPECT_EQ(opened["language"], "python");
  EXPECT_EQ(opened["state"], "idle");

  const json first = run(id, "c1", "import math; r = 3");
  EXPECT_EQ(first["status"], "ok") << first.dump();
  EXPECT_TRUE(first["result"].is_null()) << "a statement has no value: " << first.dump();
  EXPECT_EQ(first["execution_count"], 1);
  const json area = run(id, "c1", "math.pi * r ** 2");
  EXPECT_EQ(area["text"], "28.274333882308138") << area.dump();
  EXPECT_EQ(area["result"]["text/plain"], "28.274333882308138");
  EXPECT_EQ(area["execution_count"], 2);

  const json printed =
      run(id, "c1", "import sys\nprint('out')\nprint('err', file=sys.stderr)\n{'a': [1, 2]}");
  EXPECT_EQ(printed["stdout"], "out\n") << printed.dump();
  EXPECT_EQ(printed["stderr"], "err\n") << printed.dump();
  EXPECT_EQ(printed["result"]["application/json"], json({{"a", {1, 2}}})) << printed.dump();
  EXPECT_EQ(printed["text"], "{'a': [1, 2]}");
  // What a subprocess writes is the cell's output too.
  EXPECT_EQ(run(id, "c1", "import subprocess; subprocess.run(['echo', 'from-child'])")["stdout"],
            "from-child\n");
  EXPECT_EQ(value(id, "c1", "import asyncio\nawait asyncio.sleep(0.01)\n6 * 7"), "42") << "top-level await";

  // A real PNG (made with zlib), from _repr_png_ and from display().
  const json image = run(id, "c1", R"(import struct, zlib
def chunk(kind, data):
    return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))
class Dot:
    def _repr_png_(self):
        header = struct.pack('>IIBBBBB', 1, 1, 8, 0, 0, 0, 0)
        return b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', header) + chunk(b'IDAT', zlib.compress(b'\x00\x7f')) + chunk(b'IEND', b'')
    def __repr__(self):
        return 'Dot()'
display(Dot())
Dot())");
  ASSERT_EQ(image["status"], "ok") << image.dump();
  ASSERT_EQ(image["displays"].size(), 1u) << image.dump();
  EXPECT_EQ(decode_base64(image["displays"][0]["image/png"]).substr(0, 4), "\x89PNG") << image.dump();
  EXPECT_EQ(decode_base64(image["result"]["image/png"]).substr(0, 4), "\x89PNG") << image.dump();
  EXPECT_EQ(image["text"], "Dot()");

  // The user's errors are results, with the user's frames only.
  const json error = run(id, "c1", "def f():\n    return 1 / 0\nf()");
  EXPECT_EQ(error["status"], "error") << error.dump();
  EXPECT_EQ(error["error"]["name"], "ZeroDivisionError");
  EXPECT_EQ(error["error"]["value"], "division by zero");
  const std::string traceback = error["error"]["traceback"].dump();
  EXPECT_NE(traceback.find("<cell-"), std::string::npos) << traceback;
  EXPECT_NE(traceback.find("in f"), std::string::npos) << traceback;
  EXPECT_EQ(traceback.find("airlock-context"), std::string::npos) << "our own frames showed: " << traceback;
  EXPECT_EQ(run(id, "c1", "def (")["error"]["name"], "SyntaxError");
  EXPECT_EQ(run(id, "c1", "input()")["error"]["name"], "EOFError") << "a cell has no stdin to wait for";
  EXPECT_EQ(value(id, "c1", "r"), "3") << "errors keep the variables";

  // Another context has variables of its own.
  open(id, {{"name", "c2"}});
  EXPECT_EQ(run(id, "c2", "r")["error"]["name"], "NameError");
  const json listed = call("GET", "/v1/sandboxes/" + id + "/contexts", "", 200);
  ASSERT_EQ(listed["contexts"].size(), 2u) << listed.dump();
  EXPECT_EQ(context(id, "c1")["execution_count"], 10);
  EXPECT_EQ(call("DELETE", "/v1/sandboxes/" + id + "/contexts/c2", "", 200)["state"], "stopped");
  EXPECT_NE(call("POST", "/v1/sandboxes/" + id + "/contexts/c2/run", R"({"code":"1"})", 404)
                .dump()
                .find("no code context 'c2'"),
            std::string::npos);

  // Bad requests name what is wrong.
  const std::string contexts = "/v1/sandboxes/" + id + "/contexts";
  EXPECT_NE(call("POST", contexts, R"({"language":"ruby"})", 400).dump().find("not 'ruby'"),
            std::string::npos);
  EXPECT_NE(call("POST", contexts, R"({"name":"bad name!"})", 400).dump().find("a context's name"),
            std::string::npos);
  EXPECT_NE(call("POST", contexts, R"({"name":"c1"})", 409).dump().find("exists already"), std::string::npos);
  EXPECT_NE(call("POST", contexts + "/c1/run", R"({"code":5})", 400).dump().find("'code'"),
            std::string::npos);
  EXPECT_NE(call("POST", contexts + "/c1/run", R"({"code":"1","colour":1})", 400).dump().find("'colour'"),
            std::string::npos);
  call("POST", "/v1/sandboxes/sb-00000000000000000000000000000000/contexts/c1/run", R"({"code":"1"})", 404);
  // A context made without a name gets one; without a language, the sandbox's.
  const json unnamed = open(id, json::object());
  EXPECT_EQ(unnamed["name"].get<std::string>().rfind("ctx-", 0), 0u) << unnamed.dump();
  EXPECT_EQ(unnamed["language"], "python");
}

// Reads an HTTP response from `fd` until `text` has come (or the stream ends).
std::string read_until(int fd, std::string& got, const std::string& text) {
  char buffer[4096];
  while (got.find(text) == std::string::npos) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n <= 0) break;
    got.append(buffer, static_cast<size_t>(n));
  }
  return got;
}

TEST_F(CodeContexts, CellsStreamTheirEventsAndCanBeInterruptedTimedOutAndRestarted) {
  ASSERT_TRUE(start_daemon());
  const std::string id = sandbox("python");
  open(id, {{"name", "c"}});
  EXPECT_EQ(value(id, "c", "import os, time\nkept = 1\nkept"), "1");

  // Streamed: the first line arrives while the cell still waits for the test.
  UniqueFd connection(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  daemon_->socket().copy(address.sun_path, sizeof address.sun_path - 1);
  ASSERT_EQ(::connect(connection.get(), reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  const std::string body =
      json{{"code",
            "print('first')\nfor _ in range(600):\n    if os.path.exists('go'): break\n"
            "    time.sleep(0.05)\nprint('second' if os.path.exists('go') else 'no go')\n5"}}
          .dump();
  const std::string head = "POST /v1/sandboxes/" + id +
                           "/contexts/c/run HTTP/1.1\r\nHost: x\r\nAccept: application/x-ndjson\r\n"
                           "Content-Type: application/json\r\nConnection: close\r\nContent-Length: " +
                           std::to_string(body.size()) + "\r\n\r\n";
  ASSERT_EQ(::send(connection.get(), (head + body).data(), head.size() + body.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(head.size() + body.size()));
  std::string got;
  read_until(connection.get(), got, R"("text":"first\n")");
  ASSERT_NE(got.find(R"({"text":"first\n","type":"stdout"})"), std::string::npos) << got;
  EXPECT_EQ(got.find("\"done\""), std::string::npos) << "the cell has not ended yet: " << got;
  EXPECT_EQ(call("GET", "/v1/sandboxes/" + id, "", 200)["state"], "busy") << "a cell in progress";
  engine::ExecRequest go;
  go.argv = {"touch", "/home/sandbox/go"};
  call("POST", "/v1/sandboxes/" + id + "/execs", engine::to_json(go).dump(), 200);
  read_until(connection.get(), got, "\"type\":\"done\"");
  read_until(connection.get(), got, "\r\n0\r\n");
  EXPECT_NE(got.find(R"("text":"second\n")"), std::string::npos) << got;
  EXPECT_NE(got.find(R"("data":{"text/plain":"5"},"type":"result")"), std::string::npos) << got;
  EXPECT_NE(got.find(R"("status":"ok")"), std::string::npos) << got;

  // Interrupted while it sleeps: a KeyboardInterrupt, the variables kept.
  const std::string run_path = "/v1/sandboxes/" + id + "/contexts/c/run";
  auto sleeper = std::async(std::launch::async, [&] {
    return daemon_->post(run_path, R"json({"code":"time.sleep(60)","timeout_s":120})json");
  });
  for (int i = 0; i < 200 && context(id, "c")["state"] != "busy"; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  const json busy = call("POST", run_path, R"({"code":"1"})", 409);
  EXPECT_NE(busy.dump().find("is running a cell"), std::string::npos) << busy.dump();
  EXPECT_EQ(call("POST", "/v1/sandboxes/" + id + "/contexts/c/interrupt", "", 200)["name"], "c");
  const json interrupted = json::parse(sleeper.get().body);
  EXPECT_EQ(interrupted["status"], "interrupted") << interrupted.dump();
  EXPECT_EQ(interrupted["error"]["name"], "KeyboardInterrupt") << interrupted.dump();
  EXPECT_EQ(value(id, "c", "kept"), "1");

  // Past its timeout: interrupted the same way.
  const json slow = run(id, "c", "time.sleep(30)", {{"timeout_s", 1}});
  EXPECT_EQ(slow["status"], "timeout") << slow.dump();
  EXPECT_EQ(value(id, "c", "kept"), "1");
  // A cell that ignores the interrupt: killed with its interpreter; the context is dead until restarted.
  const json stuck =
      run(id, "c", "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\ntime.sleep(30)",
          {{"timeout_s", 1}});
  EXPECT_EQ(stuck["status"], "timeout") << stuck.dump();
  EXPECT_EQ(stuck["error"]["name"], "TimeoutError") << stuck.dump();
  EXPECT_NE(stuck.value("reason", "").find("killed"), std::string::npos) << stuck.dump();
  EXPECT_EQ(context(id, "c")["state"], "dead");
  EXPECT_NE(call("POST", run_path, R"({"code":"1"})", 409).dump().find("is dead"), std::string::npos);
  const json restarted = call("POST", "/v1/sandboxes/" + id + "/contexts/c/restart", "", 200);
  EXPECT_EQ(restarted["state"], "idle") << restarted.dump();
  EXPECT_EQ(restarted["execution_count"], 0);
  EXPECT_EQ(run(id, "c", "kept")["error"]["name"], "NameError") << "a restart starts afresh";
  EXPECT_EQ(value(id, "c", "1 + 1"), "2");

  // An interpreter that exits: the cell says how; the context is dead.
  const json died = run(id, "c", "import os\nprint('bye', flush=True)\nos._exit(3)");
  EXPECT_EQ(died["status"], "died") << died.dump();
  EXPECT_EQ(died["stdout"], "bye\n") << died.dump();
  EXPECT_NE(died.value("reason", "").find("exited with status 3"), std::string::npos) << died.dump();
  EXPECT_NE(context(id, "c").value("reason", "").find("status 3"), std::string::npos);

  // A cell that writes to the context's own socket ends its context, never the VM.
  call("POST", "/v1/sandboxes/" + id + "/contexts/c/restart", "", 200);
  const json forged = run(id, "c", "import os\nos.write(3, b'{\"type\":\"done\",\"status\":1}\\n')\n1");
  EXPECT_EQ(forged["status"], "ok") << "a done the cell wrote itself is not its end: " << forged.dump();
  EXPECT_EQ(forged["text"], "1") << forged.dump();
  EXPECT_EQ(value(id, "c", "2"), "2") << "the context goes on";
  const json garbage = run(id, "c", "import os\nos.write(3, b'garbage\\n')\nimport time\ntime.sleep(5)");
  EXPECT_EQ(garbage["status"], "died") << garbage.dump();
  EXPECT_NE(garbage.value("reason", "").find("broke the context protocol"), std::string::npos)
      << garbage.dump();
  engine::ExecRequest still;
  still.argv = {"echo", "alive"};
  EXPECT_EQ(call("POST", "/v1/sandboxes/" + id + "/execs", engine::to_json(still).dump(), 200)["stdout"],
            "alive\n");
}

TEST_F(CodeContexts, AJavascriptContextKeepsItsBindingsAndAnotherImageSaysWhatItLacks) {
  ASSERT_TRUE(start_daemon());
  const std::string js = sandbox("javascript");
  EXPECT_EQ(open(js, {{"name", "js1"}})["language"], "javascript");
  EXPECT_EQ(value(js, "js1", "let x = 2; x * 21"), "42");
  EXPECT_EQ(value(js, "js1", "x + 1"), "3") << "a top-level let lives on";
  const json data = run(js, "js1", "console.log('out'); console.error('err'); ({a: [1, 2]})");
  EXPECT_EQ(data["stdout"], "out\n") << data.dump();
  EXPECT_EQ(data["stderr"], "err\n") << data.dump();
  EXPECT_EQ(data["result"]["application/json"], json({{"a", {1, 2}}})) << data.dump();
  EXPECT_EQ(value(js, "js1", "Promise.resolve(5).then((v) => v * 2)"), "10") << "a promise is awaited";
  const json error = run(js, "js1", "function f() { return missing; }\nf()");
  EXPECT_EQ(error["status"], "error") << error.dump();
  EXPECT_EQ(error["error"]["name"], "ReferenceError");
  EXPECT_NE(error["error"]["traceback"].dump().find("<cell-"), std::string::npos) << error.dump();
  const json spin = run(js, "js1", "while (true) {}", {{"timeout_s", 1}});
  EXPECT_EQ(spin["status"], "timeout") << spin.dump();
  EXPECT_EQ(value(js, "js1", "x"), "2") << "an interrupted script keeps the context";
  EXPECT_EQ(value(js, "js1", "typeof require('fs').readFileSync"), "'function'");

  // The python image has no node: the start fails clearly and leaves nothing.
  const std::string py = sandbox("python");
  const json refused =
      call("POST", "/v1/sandboxes/" + py + "/contexts", R"({"name":"js","language":"js"})", 409);
  EXPECT_NE(refused.dump().find("node: command not found"), std::string::npos) << refused.dump();
  EXPECT_TRUE(call("GET", "/v1/sandboxes/" + py + "/contexts", "", 200)["contexts"].empty());
}

TEST_F(CodeContexts, ContextsLiveOnInSnapshotsAndEveryForkDrawsItsOwnRandomNumbers) {
  ASSERT_TRUE(start_daemon());
  const std::string id = sandbox("python");
  open(id, {{"name", "c"}});
  const std::string secret = value(id, "c", "import random\nsecret = random.random()\nsecret");
  call("POST", "/v1/sandboxes/" + id + "/snapshots", R"({"name":"with-context"})", 201);
  run(id, "c", "del secret");

  const std::string copy = call("POST", "/v1/snapshots/with-context/restore", "{}", 201)["id"];
  const json listed = call("GET", "/v1/sandboxes/" + copy + "/contexts", "", 200);
  ASSERT_EQ(listed["contexts"].size(), 1u) << listed.dump();
  EXPECT_EQ(listed["contexts"][0]["execution_count"], 1) << listed.dump();
  EXPECT_EQ(value(copy, "c", "secret"), secret) << "the restored context holds its variables";
  EXPECT_EQ(run(id, "c", "secret")["error"]["name"], "NameError") << "the source goes on as it was";

  const json forked = call("POST", "/v1/sandboxes/" + id + "/fork", R"({"count":2})", 200);
  ASSERT_EQ(forked["copies"].size(), 2u) << forked.dump();
  std::set<std::string> draws = {value(id, "c", "random.random()")};
  for (const auto& answer : forked["copies"]) {
    ASSERT_TRUE(answer.contains("sandbox")) << answer.dump();
    draws.insert(value(answer["sandbox"]["id"], "c", "random.random()"));
  }
  EXPECT_EQ(draws.size(), 3u) << "the source and its forks drew the same: " << json(draws).dump();
  for (const auto& answer : forked["copies"])
    call("DELETE", "/v1/sandboxes/" + answer["sandbox"]["id"].get<std::string>(), "", 200);
  call("DELETE", "/v1/sandboxes/" + copy, "", 200);
  call("DELETE", "/v1/snapshots/with-context", "", 200);
}

}  // namespace
}  // namespace airlock::testing
