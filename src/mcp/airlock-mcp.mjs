#!/usr/bin/env node
// airlock's MCP server (docs/mcp.md): an LLM client's way to run code in
// airlockd's microVMs. Started by `airlock mcp`: on stdio by default, or on
// Streamable HTTP with --listen 127.0.0.1:PORT (a bearer token required).
// It logs to stderr only: on stdio, stdout is the protocol.
import crypto from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { parseArgs } from "node:util";

import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { isInitializeRequest } from "@modelcontextprotocol/sdk/types.js";

import { Daemon, daemonAddress, runtimeDir, startPrivateDaemon } from "./daemon.mjs";
import { Session } from "./session.mjs";
import { registerTools } from "./tools.mjs";

const VERSION = JSON.parse(fs.readFileSync(new URL("./package.json", import.meta.url), "utf8")).version;
const INSTRUCTIONS = `Airlock runs code in isolated microVMs. Use run_code for a one-off program (a fresh VM each call, nothing kept). For work in steps, create_sandbox once, then exec commands, write_file / read_file / list_files; files and processes persist in it. A long command answers an exec_id: read on with exec_poll. Sandboxes this session creates are destroyed when it ends unless created with keep. The home directory is /home/sandbox; there is no network unless asked for.`;

function log(message) {
  process.stderr.write(`airlock mcp: ${message}\n`);
}

function options() {
  const { values } = parseArgs({
    options: {
      socket: { type: "string" }, url: { type: "string" }, listen: { type: "string" }, "token-file": { type: "string" },
      "output-cap": { type: "string", default: "32768" }, airlockd: { type: "string" }, "no-autostart": { type: "boolean", default: false },
      "session-idle-timeout": { type: "string", default: "1800" }, "max-sessions": { type: "string", default: "32" },
    },
    strict: true,
  });
  const cap = Number(values["output-cap"]);
  if (!Number.isInteger(cap) || cap < 1024 || cap > 1_048_576) throw new Error(`--output-cap takes bytes from 1024 to 1048576, not ${values["output-cap"]}`);
  const idle = Number(values["session-idle-timeout"]);
  if (!Number.isInteger(idle) || idle < 10) throw new Error(`--session-idle-timeout takes seconds (at least 10), not ${values["session-idle-timeout"]}`);
  const maxSessions = Number(values["max-sessions"]);
  if (!Number.isInteger(maxSessions) || maxSessions < 1) throw new Error(`--max-sessions takes a count, not ${values["max-sessions"]}`);
  return { ...values, cap, idle, maxSessions };
}

// airlockd as configured, or a private one when none answers (unless told not to).
async function connect(opts) {
  const daemon = new Daemon(daemonAddress(opts));
  if (await daemon.answers()) return { daemon, stop: async () => {} };
  const where = daemon.address.socketPath ?? daemon.address.url.href;
  if (opts["no-autostart"] || daemon.address.url || !opts.airlockd) {
    throw new Error(`no airlockd answers at ${where}; start one (build/bin/airlockd)` + (opts["no-autostart"] ? "" : ", or let airlock mcp start its own"));
  }
  log(`no airlockd answers at ${where}: starting a private one (${opts.airlockd})`);
  return startPrivateDaemon(opts.airlockd);
}

function mcpServer(daemon, session, cap) {
  const server = new McpServer({ name: "airlock", version: VERSION }, { instructions: INSTRUCTIONS });
  registerTools(server, { daemon, session, cap });
  return server;
}

// Runs `ending` once, on the first of the process's ways to end.
function onExit(ending) {
  let started = null;
  const run = (code) => {
    started ??= ending().catch((error) => log(error.message)).finally(() => process.exit(code));
    return started;
  };
  process.on("SIGTERM", () => run(0));
  process.on("SIGINT", () => run(0));
  process.on("SIGHUP", () => run(0));
  return run;
}

async function serveStdio(opts, daemon, stopDaemon) {
  const session = new Session(daemon, log);
  const server = mcpServer(daemon, session, opts.cap);
  const transport = new StdioServerTransport();
  const end = onExit(async () => {
    await session.close();
    await stopDaemon();
  });
  transport.onclose = () => end(0);
  process.stdin.on("end", () => end(0));
  await server.connect(transport);
}

function loopbackListen(address) {
  const match = /^(127\.0\.0\.1|localhost|\[::1\]):(\d{1,5})$/.exec(address);
  if (!match || Number(match[2]) > 65535) {
    throw new Error(`--listen takes 127.0.0.1:PORT, localhost:PORT or [::1]:PORT (loopback only), not ${address}`);
  }
  return { host: match[1] === "[::1]" ? "::1" : match[1], port: Number(match[2]) };
}

// The bearer token HTTP clients must send: read from the file, or made
// there (0600) when it does not exist yet.
function bearerToken(file) {
  const where = file ?? path.join(runtimeDir(), "mcp.token");
  try {
    const token = fs.readFileSync(where, "utf8").trim();
    privateToUs(where);
    if (token.length < 16) throw new Error(`the token in ${where} is shorter than 16 characters`);
    return { token, where };
  } catch (error) {
    if (error.code !== "ENOENT") throw error;
  }
  fs.mkdirSync(path.dirname(where), { recursive: true, mode: 0o700 });
  privateToUs(path.dirname(where));
  const token = crypto.randomBytes(32).toString("hex");
  fs.writeFileSync(where, `${token}\n`, { mode: 0o600, flag: "wx" });
  log(`made a bearer token for HTTP clients in ${where}`);
  return { token, where };
}

// A token others could read, or plant, is no secret.
function privateToUs(where) {
  const info = fs.lstatSync(where);
  const writable = info.isDirectory() ? 0o022 : 0o077;
  if (info.uid !== process.getuid() || (info.mode & writable) !== 0 || info.isSymbolicLink()) {
    throw new Error(`${where} must be this user's own and private (mode ${info.isDirectory() ? "700" : "600"}) to hold the MCP token`);
  }
}

function authorized(request, token) {
  const sent = /^Bearer (.+)$/.exec(request.headers.authorization ?? "")?.[1] ?? "";
  const a = crypto.createHash("sha256").update(sent).digest();
  const b = crypto.createHash("sha256").update(token).digest();
  return crypto.timingSafeEqual(a, b);
}

function refuse(response, status, message, headers = {}) {
  response.writeHead(status, { "Content-Type": "application/json", ...headers });
  response.end(JSON.stringify({ jsonrpc: "2.0", error: { code: -32000, message }, id: null }));
}

async function serveHttp(opts, daemon, stopDaemon) {
  const { host, port } = loopbackListen(opts.listen);
  const { token, where } = bearerToken(opts["token-file"]);
  const sessions = new Map(); // MCP session id -> { transport, session, seen }
  const hosts = [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`];

  const open = async (request, response, body) => {
    const session = new Session(daemon, log);
    const server = mcpServer(daemon, session, opts.cap);
    const transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => crypto.randomUUID(),
      enableDnsRebindingProtection: true, allowedHosts: hosts,
      onsessioninitialized: (id) => sessions.set(id, { transport, session, seen: Date.now() }),
    });
    transport.onclose = () => {
      if (transport.sessionId) sessions.delete(transport.sessionId);
      session.close();
    };
    await server.connect(transport);
    await transport.handleRequest(request, response, body);
  };

  const handle = async (request, response) => {
    const url = new URL(request.url, "http://localhost");
    if (url.pathname !== "/mcp") return refuse(response, 404, "not found: the MCP endpoint is /mcp");
    if (!authorized(request, token)) return refuse(response, 401, `missing or wrong bearer token (it is in ${where})`, { "WWW-Authenticate": "Bearer" });
    const id = request.headers["mcp-session-id"];
    const known = id ? sessions.get(id) : undefined;
    if (known) {
      known.seen = Date.now();
      return known.transport.handleRequest(request, response);
    }
    if (id) return refuse(response, 404, `no MCP session ${id} (it ended, or idled out): initialize a new one`);
    if (request.method !== "POST") return refuse(response, 400, "no MCP session: POST an initialize request first");
    const body = await readJson(request);
    if (!isInitializeRequest(body)) return refuse(response, 400, "no MCP session: the first request must be initialize");
    if (sessions.size >= opts.maxSessions) return refuse(response, 503, `already ${sessions.size} MCP sessions (--max-sessions)`);
    return open(request, response, body);
  };

  const listener = http.createServer((request, response) => {
    handle(request, response).catch((error) => {
      log(`request failed: ${error.message}`);
      if (!response.headersSent) refuse(response, error.status ?? 500, error.message);
      else response.destroy();
    });
  });
  const sweep = setInterval(() => {
    const cutoff = Date.now() - opts.idle * 1000;
    for (const [id, entry] of sessions) {
      if (entry.seen < cutoff) {
        log(`MCP session ${id} idle for ${opts.idle} s: ended, its sandboxes destroyed`);
        entry.transport.close();
      }
    }
  }, Math.min(60_000, opts.idle * 250));
  sweep.unref();
  onExit(async () => {
    listener.close();
    await Promise.all([...sessions.values()].map(async (entry) => {
      await entry.transport.close();
      await entry.session.close();
    }));
    await stopDaemon();
  });
  await new Promise((resolve, reject) => {
    listener.once("error", reject);
    listener.listen(port, host, resolve);
  });
  log(`serving MCP (Streamable HTTP) on http://${opts.listen}/mcp; clients send "Authorization: Bearer <the token in ${where}>"`);
}

// The initialize request's JSON, at most 1 MiB.
async function readJson(request) {
  const chunks = [];
  let size = 0;
  for await (const chunk of request) {
    size += chunk.length;
    if (size > 1_048_576) throw Object.assign(new Error("request body over 1 MiB"), { status: 413 });
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch {
    throw Object.assign(new Error("request body is not JSON"), { status: 400 });
  }
}

async function main() {
  const opts = options();
  if (opts.listen) loopbackListen(opts.listen);
  const { daemon, stop } = await connect(opts);
  if (opts.listen) await serveHttp(opts, daemon, stop);
  else await serveStdio(opts, daemon, stop);
}

main().catch((error) => {
  log(error.message);
  process.exit(2);
});
