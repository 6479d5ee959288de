// `airlock mcp` driven by the official MCP SDK's own client, over stdio and
// over Streamable HTTP, against a real airlockd (real VMs, real outputs).
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";

import { AIRLOCK, AIRLOCKD, call, Client, daemonGet, freePort, qemuUnder, startDaemon, StdioClientTransport,
         StreamableHTTPClientTransport, text } from "./support.mjs";

const TOOLS = ["create_sandbox", "destroy_sandbox", "exec", "exec_poll", "exec_signal", "exec_write_stdin", "fork",
               "list_files", "list_images", "list_sandboxes", "read_file", "restore_snapshot", "run_code", "snapshot", "write_file"];

let daemon;
before(async () => {
  daemon = await startDaemon();
});
after(async () => {
  await daemon.stop();
});

async function stdioClient(extra = [], env = {}) {
  const transport = new StdioClientTransport({ command: AIRLOCK, args: ["mcp", "--socket", daemon.socket, ...extra],
                                               env: { ...process.env, ...env }, stderr: "pipe" });
  const client = new Client({ name: "airlock-test", version: "1.0.0" });
  await client.connect(transport);
  return { client, transport };
}

async function sandboxState(id) {
  const { status, body } = await daemonGet(daemon.socket, "GET", `/v1/sandboxes/${id}`);
  return status === 404 ? "gone" : body.state;
}

// Destroyed: stopped as its VM goes, then gone from the daemon's list.
async function destroyedSoon(id) {
  const destroyed = (state) => state === "stopped" || state === "gone";
  for (let i = 0; i < 100 && !destroyed(await sandboxState(id)); i++) await new Promise((r) => setTimeout(r, 100));
  return destroyed(await sandboxState(id));
}

describe("over stdio", () => {
  let client;
  before(async () => {
    ({ client } = await stdioClient(["--output-cap", "4096"]));
  });
  after(async () => {
    await client?.close();
  });

  test("lists every tool with an input schema and annotations that say what it may change", async () => {
    const { tools } = await client.listTools();
    assert.deepEqual(tools.map((tool) => tool.name).sort(), TOOLS);
    const byName = Object.fromEntries(tools.map((tool) => [tool.name, tool]));
    for (const tool of tools) {
      assert.equal(tool.inputSchema.type, "object", tool.name);
      assert.ok(tool.description.length > 40, tool.name);
      assert.equal(typeof tool.annotations.readOnlyHint, "boolean", tool.name);
    }
    assert.deepEqual(byName.run_code.inputSchema.required.sort(), ["code", "language"]);
    assert.ok(byName.run_code.description.includes("4096 bytes per call"), "the cap is stated");
    assert.equal(byName.read_file.annotations.readOnlyHint, true);
    assert.equal(byName.destroy_sandbox.annotations.destructiveHint, true);
    assert.equal(byName.exec_poll.annotations.readOnlyHint, true);
    const server = client.getServerVersion();
    assert.equal(server.name, "airlock");
    assert.match(client.getInstructions(), /create_sandbox/);
  });

  test("run_code runs each language in a fresh VM and answers status, exit code and output", async () => {
    const python = await call(client, "run_code", { language: "python", code: "import sys\nprint(6*7)\nprint('oops', file=sys.stderr)" });
    assert.equal(python.isError, undefined);
    assert.equal(python.structuredContent.status, "ok");
    assert.equal(python.structuredContent.exit_code, 0);
    assert.equal(python.structuredContent.stdout, "42\n");
    assert.equal(python.structuredContent.stderr, "oops\n");
    assert.match(text(python), /status: ok, exit code 0/);
    const shell = await call(client, "run_code", { language: "shell", code: "echo $((2+3)); exit 3" });
    assert.equal(shell.structuredContent.exit_code, 3);
    assert.equal(shell.structuredContent.status, "error");
    assert.equal(shell.structuredContent.stdout, "5\n");
    const js = await call(client, "run_code", { language: "javascript", code: "console.log([1,2].map(x => x * 10).join())" });
    assert.equal(js.structuredContent.stdout, "10,20\n");
    const data = await call(client, "run_code", { language: "python", image: "python-data",
                                                  code: "import pandas as pd\nprint(int(pd.Series([1, 2, 3]).sum()))" });
    assert.equal(data.structuredContent.stdout, "6\n");
    const images = await call(client, "list_images", {});
    assert.deepEqual(images.structuredContent.images.find((image) => image.name === "python-data"),
                     { name: "python-data", origin: "built", languages: ["python", "shell"] });
    assert.match(text(images), /^go \(built\): go, shell$/m);
    const slow = await call(client, "run_code", { language: "python", code: "while True: pass", timeout_s: 2 });
    assert.equal(slow.structuredContent.status, "timeout");
  });

  test("output past the cap keeps its head and tail and says how much was left out", async () => {
    const big = await call(client, "run_code", { language: "python", code: "print('A' * 50000 + 'THE-END')" });
    const shown = big.structuredContent;
    assert.equal(shown.status, "ok");
    assert.ok(shown.stdout_omitted_bytes > 40000, JSON.stringify(shown.stdout_omitted_bytes));
    assert.ok(shown.stdout.length < 4300, `${shown.stdout.length} characters shown`);
    assert.match(shown.stdout, /THE-END\n$/);
    assert.match(shown.stdout, /bytes left out: the output cap is 4096 bytes/);
  });

  test("bad input is refused with a message naming what was wrong", async () => {
    const language = await call(client, "run_code", { language: "cobol", code: "x" });
    assert.equal(language.isError, true);
    assert.match(text(language), /language/);
    const missing = await call(client, "exec", { sandbox_id: "sb-" + "0".repeat(32), command: "true" });
    assert.equal(missing.isError, true);
    assert.match(text(missing), /^not_found: /);
    assert.equal(missing.structuredContent.error.code, "not_found");
    const id = await call(client, "read_file", { sandbox_id: "nope", path: "/etc/passwd" });
    assert.equal(id.isError, true);
    assert.match(text(id), /sandbox_id/);
  });

  test("a sandbox keeps files and state between execs; files go both ways", async () => {
    const created = await call(client, "create_sandbox", { language: "python", memory_mb: 256 });
    const id = created.structuredContent.id;
    assert.match(id, /^sb-[0-9a-f]{32}$/);
    assert.equal(created.structuredContent.ownership, "this session's, destroyed when it ends");

    const first = await call(client, "exec", { sandbox_id: id, command: "echo 1 > x && echo wrote" });
    assert.equal(first.structuredContent.state, "exited");
    assert.equal(first.structuredContent.exit_code, 0);
    assert.equal(first.structuredContent.stdout, "wrote\n");
    const second = await call(client, "exec", { sandbox_id: id, command: ["cat", "/home/sandbox/x"] });
    assert.equal(second.structuredContent.stdout, "1\n");
    const failed = await call(client, "exec", { sandbox_id: id, command: "ls /nonexistent" });
    assert.equal(failed.structuredContent.exit_code, 2);
    assert.match(failed.structuredContent.stderr, /nonexistent/);

    const written = await call(client, "write_file", { sandbox_id: id, path: "data/in.txt", content: "hello\nworld\n" });
    assert.equal(written.structuredContent.path, "/home/sandbox/data/in.txt");
    assert.equal(written.structuredContent.bytes, 12);
    const counted = await call(client, "exec", { sandbox_id: id, command: "wc -l < data/in.txt" });
    assert.equal(counted.structuredContent.stdout.trim(), "2");
    const binary = Buffer.from([0, 1, 2, 255, 254]);
    await call(client, "write_file", { sandbox_id: id, path: "/home/sandbox/b.bin", content: binary.toString("base64"), encoding: "base64" });
    const readBinary = await call(client, "read_file", { sandbox_id: id, path: "b.bin" });
    assert.equal(readBinary.structuredContent.encoding, "base64");
    assert.deepEqual(Buffer.from(readBinary.structuredContent.content, "base64"), binary);

    await call(client, "exec", { sandbox_id: id, command: "python3 -c \"print('x' * 10000, end='')\" > big.txt" });
    const part = await call(client, "read_file", { sandbox_id: id, path: "big.txt", offset: 9000, max_bytes: 500 });
    assert.equal(part.structuredContent.size, 10000);
    assert.equal(part.structuredContent.content, "x".repeat(500));
    assert.equal(part.structuredContent.next_offset, 9500);
    const capped = await call(client, "read_file", { sandbox_id: id, path: "big.txt" });
    assert.equal(capped.structuredContent.bytes, 4096);
    assert.equal(capped.structuredContent.next_offset, 4096);
    const directory = await call(client, "read_file", { sandbox_id: id, path: "data" });
    assert.equal(directory.isError, true);
    assert.match(text(directory), /is a directory/);

    const listing = await call(client, "list_files", { sandbox_id: id });
    const names = listing.structuredContent.entries.map((entry) => entry.name);
    for (const name of ["b.bin", "big.txt", "data", "x"]) assert.ok(names.includes(name), name);
    const data = listing.structuredContent.entries.find((entry) => entry.name === "data");
    assert.equal(data.type, "directory");
    const listed = await call(client, "list_sandboxes", {});
    assert.ok(listed.structuredContent.sandboxes.some((sandbox) => sandbox.id === id && sandbox.state === "ready"));

    const destroyed = await call(client, "destroy_sandbox", { sandbox_id: id });
    assert.equal(destroyed.structuredContent.state, "stopped");
    const after = await call(client, "exec", { sandbox_id: id, command: "true" });
    assert.equal(after.isError, true);
    assert.match(text(after), /stopped|not_found|conflict/);
  });

  test("a long command is a session: its id, then poll with a cursor, type into it, signal it", async () => {
    const { structuredContent: sandbox } = await call(client, "create_sandbox", { language: "shell", memory_mb: 256 });
    const id = sandbox.id;
    const started = await call(client, "exec", { sandbox_id: id, command: "echo start; sleep 3; echo end", wait_s: 0.5 });
    const running = started.structuredContent;
    assert.equal(running.state, "running");
    assert.match(running.exec_id, /^ex-\d+$/);
    assert.match(text(started), /still running; call exec_poll with cursor/);
    let cursor = running.cursor;
    let seen = running.stdout;
    let polled;
    for (let i = 0; i < 20; i++) {
      polled = (await call(client, "exec_poll", { sandbox_id: id, exec_id: running.exec_id, cursor, wait_s: 5 })).structuredContent;
      seen += polled.stdout;
      cursor = polled.cursor;
      if (polled.state === "exited") break;
    }
    assert.equal(polled.state, "exited");
    assert.equal(polled.exit_code, 0);
    assert.equal(seen, "start\nend\n", "each byte once: the cursor moves past what was shown");
    const again = await call(client, "exec_poll", { sandbox_id: id, exec_id: running.exec_id, cursor, wait_s: 0 });
    assert.equal(again.structuredContent.stdout, "");
    const fromStart = await call(client, "exec_poll", { sandbox_id: id, exec_id: running.exec_id, wait_s: 0 });
    assert.equal(fromStart.structuredContent.stdout, "start\nend\n");

    const cat = (await call(client, "exec", { sandbox_id: id, command: "tr a-z A-Z", stdin_open: true, wait_s: 0 })).structuredContent;
    assert.equal(cat.state, "running");
    const typed = await call(client, "exec_write_stdin", { sandbox_id: id, exec_id: cat.exec_id, data: "shout\n", close: true });
    assert.equal(typed.structuredContent.bytes, 6);
    assert.equal(typed.structuredContent.closed, true);
    const upper = (await call(client, "exec_poll", { sandbox_id: id, exec_id: cat.exec_id, wait_s: 10 })).structuredContent;
    let upperOut = upper.stdout;
    let state = upper;
    while (state.state !== "exited") {
      state = (await call(client, "exec_poll", { sandbox_id: id, exec_id: cat.exec_id, cursor: state.cursor, wait_s: 10 })).structuredContent;
      upperOut += state.stdout;
    }
    assert.equal(upperOut, "SHOUT\n");
    assert.equal(state.exit_code, 0);

    const sleeper = (await call(client, "exec", { sandbox_id: id, command: ["sleep", "300"], wait_s: 0 })).structuredContent;
    const signalled = await call(client, "exec_signal", { sandbox_id: id, exec_id: sleeper.exec_id, signal: "KILL" });
    assert.equal(signalled.isError, undefined, text(signalled));
    let ended = sleeper;
    for (let i = 0; i < 10 && ended.state !== "exited"; i++) {
      ended = (await call(client, "exec_poll", { sandbox_id: id, exec_id: sleeper.exec_id, cursor: ended.cursor, wait_s: 5 })).structuredContent;
    }
    assert.equal(ended.state, "exited");
    assert.equal(ended.signal, 9);
  });

  test("snapshot, restore and fork make sandboxes that this session owns", async () => {
    const { structuredContent: source } = await call(client, "create_sandbox", { language: "python", memory_mb: 256 });
    await call(client, "exec", { sandbox_id: source.id, command: "echo kept > state.txt" });
    const name = `mcp-test-${process.pid}`;
    const snapshot = await call(client, "snapshot", { sandbox_id: source.id, name });
    assert.equal(snapshot.isError, undefined, text(snapshot));
    assert.match(snapshot.structuredContent.id, /^snap-/);
    const restored = await call(client, "restore_snapshot", { snapshot: name });
    assert.equal(restored.isError, undefined, text(restored));
    const copy = restored.structuredContent.id;
    assert.equal((await call(client, "exec", { sandbox_id: copy, command: "cat state.txt" })).structuredContent.stdout, "kept\n");
    const forked = await call(client, "fork", { sandbox_id: source.id, count: 1 });
    assert.equal(forked.isError, undefined, text(forked));
    const [fork] = forked.structuredContent.copies;
    assert.match(fork.id, /^sb-/);
    assert.equal((await call(client, "exec", { sandbox_id: fork.id, command: "cat state.txt" })).structuredContent.stdout, "kept\n");
    const listed = (await call(client, "list_sandboxes", {})).structuredContent.sandboxes;
    assert.equal(listed.find((sandbox) => sandbox.id === fork.id).ownership, "this session's, destroyed when it ends");
    for (const sandbox of [source.id, copy, fork.id]) await call(client, "destroy_sandbox", { sandbox_id: sandbox });
    assert.equal((await daemonGet(daemon.socket, "DELETE", `/v1/snapshots/${name}`)).status, 200);
  });
});

test("the sandboxes of a stdio session are destroyed when it ends, unless it asked to keep them", async () => {
  const { client } = await stdioClient();
  const doomed = (await call(client, "create_sandbox", { language: "shell", memory_mb: 256 })).structuredContent.id;
  const kept = (await call(client, "create_sandbox", { language: "shell", memory_mb: 256, keep: true })).structuredContent.id;
  await client.close();
  assert.ok(await destroyedSoon(doomed), `the session's sandbox is destroyed (${await sandboxState(doomed)})`);
  assert.equal(await sandboxState(kept), "ready");
  assert.equal((await daemonGet(daemon.socket, "DELETE", `/v1/sandboxes/${kept}`)).status, 200);
});

describe("over Streamable HTTP", () => {
  let server;
  let port;
  let tokenFile;
  before(async () => {
    port = await freePort();
    tokenFile = path.join(daemon.dir, "mcp.token");
    const { spawn } = await import("node:child_process");
    server = spawn(AIRLOCK, ["mcp", "--socket", daemon.socket, "--listen", `127.0.0.1:${port}`, "--token-file", tokenFile],
                   { stdio: ["ignore", "ignore", "pipe"] });
    let said = "";
    await new Promise((resolve, reject) => {
      server.stderr.on("data", (chunk) => {
        said += chunk;
        if (said.includes("serving MCP")) resolve();
      });
      server.once("exit", (code) => reject(new Error(`airlock mcp exited ${code}: ${said}`)));
    });
    assert.equal(fs.statSync(tokenFile).mode & 0o777, 0o600);
  });
  after(async () => {
    const exited = new Promise((resolve) => server.once("exit", resolve));
    server.kill("SIGTERM");
    assert.equal(await exited, 0);
  });

  function httpClient(token) {
    const transport = new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${port}/mcp`),
      { requestInit: { headers: { Authorization: `Bearer ${token}` } } });
    return { client: new Client({ name: "airlock-http-test", version: "1.0.0" }), transport };
  }

  test("refuses a client without the bearer token, and a foreign Host", async () => {
    const bare = await fetch(`http://127.0.0.1:${port}/mcp`, { method: "POST", headers: { "Content-Type": "application/json" }, body: "{}" });
    assert.equal(bare.status, 401);
    assert.match((await bare.json()).error.message, /bearer token/);
    const { client, transport } = httpClient("wrong-token-wrong-token");
    await assert.rejects(client.connect(transport));
    const token = fs.readFileSync(tokenFile, "utf8").trim();
    const http = await import("node:http");
    const status = await new Promise((resolve) => {
      const request = http.request({ host: "127.0.0.1", port, path: "/mcp", method: "POST",
                                     headers: { Host: "evil.example:80", Authorization: `Bearer ${token}`, "Content-Type": "application/json",
                                                Accept: "application/json, text/event-stream" } }, (response) => resolve(response.statusCode));
      request.end(JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize",
                                   params: { protocolVersion: "2025-03-26", capabilities: {}, clientInfo: { name: "x", version: "1" } } }));
    });
    assert.equal(status, 403);
  });

  test("serves the same tools; ending the session destroys its sandboxes", async () => {
    const token = fs.readFileSync(tokenFile, "utf8").trim();
    const { client, transport } = httpClient(token);
    await client.connect(transport);
    const { tools } = await client.listTools();
    assert.deepEqual(tools.map((tool) => tool.name).sort(), TOOLS);
    const ran = await call(client, "run_code", { language: "python", code: "print(sum(range(10)))" });
    assert.equal(ran.structuredContent.stdout, "45\n");
    const id = (await call(client, "create_sandbox", { language: "shell", memory_mb: 256 })).structuredContent.id;
    const echoed = await call(client, "exec", { sandbox_id: id, command: "echo over-http" });
    assert.equal(echoed.structuredContent.stdout, "over-http\n");
    await transport.terminateSession();
    await client.close();
    assert.ok(await destroyedSoon(id), `the session's sandbox is destroyed (${await sandboxState(id)})`);
  });
});

test("with no airlockd answering, airlock mcp starts a private one and leaves nothing behind", async () => {
  const before = new Set(fs.readdirSync(os.tmpdir()).filter((name) => name.startsWith("airlock-mcp-daemon-")));
  const transport = new StdioClientTransport({ command: AIRLOCK, args: ["mcp"], stderr: "pipe",
    env: { ...process.env, AIRLOCK_SOCKET: path.join(daemon.dir, "nobody-here.sock"), AIRLOCK_DAEMON: AIRLOCKD } });
  const own = new Client({ name: "airlock-autostart-test", version: "1.0.0" });
  await own.connect(transport);
  const ran = await call(own, "run_code", { language: "shell", code: "echo private" });
  assert.equal(ran.structuredContent.stdout, "private\n");
  const made = fs.readdirSync(os.tmpdir()).filter((name) => name.startsWith("airlock-mcp-daemon-") && !before.has(name));
  assert.equal(made.length, 1, "one private daemon's directory while it runs");
  await own.close();
  for (let i = 0; i < 400 && fs.existsSync(path.join(os.tmpdir(), made[0])); i++) await new Promise((r) => setTimeout(r, 100));
  assert.ok(!fs.existsSync(path.join(os.tmpdir(), made[0])), "the private daemon's directory is removed");
  assert.deepEqual(qemuUnder(path.join(os.tmpdir(), made[0])), []);
});

test("an MCP server killed outright still takes its private daemon down, and the next one sweeps its directory", async () => {
  const before = new Set(fs.readdirSync(os.tmpdir()).filter((name) => name.startsWith("airlock-mcp-daemon-")));
  const env = { ...process.env, AIRLOCK_SOCKET: path.join(daemon.dir, "nobody-here.sock"), AIRLOCK_DAEMON: AIRLOCKD };
  const transport = new StdioClientTransport({ command: AIRLOCK, args: ["mcp"], stderr: "pipe", env });
  const doomed = new Client({ name: "airlock-kill-test", version: "1.0.0" });
  await doomed.connect(transport);
  assert.equal((await call(doomed, "run_code", { language: "shell", code: "echo once" })).structuredContent.stdout, "once\n");
  const [made] = fs.readdirSync(os.tmpdir()).filter((name) => name.startsWith("airlock-mcp-daemon-") && !before.has(name));
  const dir = path.join(os.tmpdir(), made);
  const [, daemonPid] = fs.readFileSync(path.join(dir, "owner"), "utf8").trim().split(" ").map(Number);
  process.kill(transport.pid, "SIGKILL"); // no cleanup runs: only the pipe tells airlockd
  const gone = () => { try { process.kill(daemonPid, 0); return false; } catch { return true; } };
  for (let i = 0; i < 900 && !gone(); i++) await new Promise((r) => setTimeout(r, 100));
  assert.ok(gone(), "the private airlockd read end of file on stdin and stopped");
  assert.deepEqual(qemuUnder(dir + "/"), [], "and took its VMs with it");
  assert.ok(fs.existsSync(dir), "nobody was left to remove its directory");
  await doomed.close().catch(() => {});

  const next = new Client({ name: "airlock-sweep-test", version: "1.0.0" });
  await next.connect(new StdioClientTransport({ command: AIRLOCK, args: ["mcp"], stderr: "pipe", env }));
  assert.ok(!fs.existsSync(dir), "the next private daemon's start swept it");
  await next.close();
  const left = () => fs.readdirSync(os.tmpdir()).filter((name) => name.startsWith("airlock-mcp-daemon-") && !before.has(name));
  for (let i = 0; i < 400 && left().length; i++) await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(left(), [], "the second server removed its own daemon's directory as it ended");
});
