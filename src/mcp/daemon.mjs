// airlockd as the MCP server sees it: one request at a time over its Unix
// socket (or TCP with a bearer token), its answers as JSON or bytes, its
// errors as DaemonError. And, when no daemon answers, a private one started
// for this process and stopped with it (as the Python SDK does).
import { spawn } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";

export class DaemonError extends Error {
  constructor(status, code, message, retryable = false) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryable = retryable;
  }
}

// Where to reach airlockd: { socketPath } or { url, token }.
export function daemonAddress({ socket, url, token }) {
  if (url) return { url: new URL(url), token: token ?? process.env.AIRLOCK_TOKEN ?? "" };
  if (socket) return { socketPath: socket };
  if (process.env.AIRLOCK_URL) return { url: new URL(process.env.AIRLOCK_URL), token: process.env.AIRLOCK_TOKEN ?? "" };
  if (process.env.AIRLOCK_SOCKET) return { socketPath: process.env.AIRLOCK_SOCKET };
  return { socketPath: path.join(runtimeDir(), "airlockd.sock") };
}

// As the CLI and airlockd find it (src/engine/paths.cc).
export function runtimeDir() {
  if (process.env.AIRLOCK_RUNTIME_DIR) return process.env.AIRLOCK_RUNTIME_DIR;
  if (process.env.XDG_RUNTIME_DIR) return path.join(process.env.XDG_RUNTIME_DIR, "airlock");
  return `/tmp/airlock-${process.getuid()}`;
}

export class Daemon {
  constructor(address) {
    this.address = address;
  }

  // One request. `body`: an object (sent as JSON), a Buffer (raw), or
  // undefined. Answers { status, headers, body: Buffer }; throws DaemonError
  // for an error status, and for no answer at all.
  // With maxBytes, the answer's body is cut there (a download read in part).
  async request(method, target, body, { timeoutMs = 330_000, accept, maxBytes = Infinity } = {}) {
    const payload = body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body));
    const headers = { Connection: "close" };
    if (payload) {
      headers["Content-Length"] = String(payload.length);
      headers["Content-Type"] = Buffer.isBuffer(body) ? "application/octet-stream" : "application/json";
    }
    if (accept) headers.Accept = accept;
    const options = { method, path: target, headers, timeout: timeoutMs };
    if (this.address.socketPath) {
      options.socketPath = this.address.socketPath;
    } else {
      options.host = this.address.url.hostname;
      options.port = this.address.url.port || 80;
      if (this.address.token) headers.Authorization = `Bearer ${this.address.token}`;
    }
    const answer = await new Promise((resolve, reject) => {
      const request = http.request(options, (response) => {
        const chunks = [];
        let size = 0;
        const done = () => resolve({ status: response.statusCode, headers: response.headers, body: Buffer.concat(chunks).subarray(0, maxBytes) });
        response.on("data", (chunk) => {
          chunks.push(chunk);
          size += chunk.length;
          if (size >= maxBytes && response.statusCode < 400) {
            done();
            request.destroy();
          }
        });
        response.on("end", done);
        response.on("error", (error) => reject(this.#broken(error, payload)));
      });
      request.on("timeout", () => request.destroy(new DaemonError(0, "timeout", `airlockd did not answer ${method} ${target} within ${timeoutMs / 1000} s`)));
      request.on("error", (error) => reject(this.#broken(error, payload)));
      request.end(payload);
    });
    if (answer.status >= 400) throw errorOf(answer);
    return answer;
  }

  async json(method, target, body, options) {
    const answer = await this.request(method, target, body, options);
    return answer.body.length ? JSON.parse(answer.body.toString("utf8")) : {};
  }

  async answers() {
    try {
      await this.request("GET", "/v1/health", undefined, { timeoutMs: 5000 });
      return true;
    } catch (error) {
      return !(error instanceof DaemonError && error.code === "unavailable" && error.status === 0);
    }
  }

  #broken(error, payload) {
    if (error instanceof DaemonError) return error;
    const where = this.address.socketPath ?? this.address.url.href;
    if (["ENOENT", "ECONNREFUSED"].includes(error.code)) {
      return new DaemonError(0, "unavailable", `no airlockd answers at ${where} (start it with build/bin/airlockd)`, true);
    }
    return new DaemonError(0, "outcome_unknown", `the connection to airlockd at ${where} broke (${error.message}); ` +
      (payload ? "the request may have been carried out" : "try again"));
  }
}

function errorOf(answer) {
  let detail = {};
  try {
    detail = JSON.parse(answer.body.toString("utf8")).error ?? {};
  } catch {
    detail = { message: answer.body.toString("utf8").slice(0, 500) };
  }
  return new DaemonError(answer.status, detail.code ?? "internal", detail.message ?? `airlockd answered ${answer.status}`,
                         detail.retryable ?? false);
}

const PREFIX = "airlock-mcp-daemon-";

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return error.code === "EPERM";
  }
}

// Removes the directories of private daemons whose server and daemon are both
// gone (a server killed before stop(): its daemon drained on its own, on end
// of file, but nobody removed the directory). Each names its two pids in `owner`.
export function sweepAbandoned() {
  const removed = [];
  for (const name of fs.readdirSync(os.tmpdir()).filter((entry) => entry.startsWith(PREFIX))) {
    const dir = path.join(os.tmpdir(), name);
    try {
      const info = fs.lstatSync(dir);
      if (!info.isDirectory() || info.uid !== process.getuid()) continue;
      let pids;
      try {
        pids = fs.readFileSync(path.join(dir, "owner"), "utf8").trim().split(/\s+/).map(Number);
      } catch {
        // Being made (the owner file follows at once), unless it is old.
        if (Date.now() - info.mtimeMs < 3_600_000) continue;
        pids = [];
      }
      if (pids.some((pid) => Number.isInteger(pid) && pid > 0 && alive(pid))) continue;
      fs.rmSync(dir, { recursive: true, force: true });
      removed.push(dir);
    } catch {
      // gone meanwhile, or not ours to remove
    }
  }
  return removed;
}

// A private airlockd in a temporary directory, for when none answers.
// stop() ends it and removes the directory.
export async function startPrivateDaemon(binary, { startTimeoutMs = 60_000 } = {}) {
  sweepAbandoned();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), PREFIX));
  const socketPath = path.join(dir, "airlockd.sock");
  const log = fs.openSync(path.join(dir, "airlockd.log"), "w");
  // Its stdin is a pipe only we hold: if this server dies before stop(), even
  // by SIGKILL, the daemon reads end of file and drains (--exit-with-stdin).
  const child = spawn(binary, ["--socket", socketPath, "--exit-with-stdin"], {
    detached: true, // its own session: the MCP host's Ctrl-C is not its
    stdio: ["pipe", log, log],
    env: { ...process.env, AIRLOCK_RUNTIME_DIR: dir },
  });
  fs.closeSync(log);
  fs.writeFileSync(path.join(dir, "owner"), `${process.pid} ${child.pid ?? 0}\n`);
  child.stdin.on("error", () => {});
  child.stdin.unref?.();
  const exited = new Promise((resolve) => child.once("exit", resolve));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 40_000);
      await exited;
      clearTimeout(timer);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };
  child.once("error", () => {});
  const daemon = new Daemon({ socketPath });
  const deadline = Date.now() + startTimeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) break;
    if (fs.existsSync(socketPath) && (await daemon.answers())) return { daemon, stop };
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const said = fs.existsSync(path.join(dir, "airlockd.log")) ? fs.readFileSync(path.join(dir, "airlockd.log"), "utf8").slice(-2000) : "";
  await stop();
  throw new Error(`the private airlockd (${binary}) did not start: ${said || "no output"}`);
}
