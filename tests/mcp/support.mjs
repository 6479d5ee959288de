// What the MCP tests share: the official SDK's client (from src/mcp's
// node_modules), a private airlockd stopped with nothing left, and helpers.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import { createRequire } from "node:module";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";

export const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), "../..");
export const AIRLOCK = process.env.AIRLOCK_BIN ?? path.join(ROOT, "build/bin/airlock");
export const AIRLOCKD = process.env.AIRLOCK_DAEMON ?? path.join(ROOT, "build/bin/airlockd");

// Resolved as src/mcp resolves it, so the tests use the SDK the server was installed with.
const sdkResolve = createRequire(path.join(ROOT, "src/mcp/package.json"));
const load = (file) => import(pathToFileURL(sdkResolve.resolve(`@modelcontextprotocol/sdk/${file}`)).href);
export const { Client } = await load("client/index.js");
export const { StdioClientTransport } = await load("client/stdio.js");
export const { StreamableHTTPClientTransport } = await load("client/streamableHttp.js");

export function qemuUnder(dir) {
  return fs.readdirSync("/proc").filter((pid) => /^\d+$/.test(pid)).filter((pid) => {
    try {
      const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8");
      return cmdline.includes("qemu-system") && cmdline.includes(dir);
    } catch {
      return false;
    }
  });
}

// airlockd in a directory of its own; stop() checks it drained and left nothing.
export async function startDaemon() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "airlock-mcp-test-"));
  const socket = path.join(dir, "airlockd.sock");
  const log = fs.openSync(path.join(dir, "airlockd.log"), "w");
  const child = spawn(AIRLOCKD, ["--socket", socket, "--pool-size", "1", "--snapshot-dir", path.join(dir, "snapshots")],
                      { stdio: ["ignore", log, log], env: { ...process.env, AIRLOCK_RUNTIME_DIR: dir } });
  fs.closeSync(log);
  const exited = new Promise((resolve) => child.once("exit", (code) => resolve(code)));
  for (let i = 0; i < 600 && !(await answers(socket)); i++) await new Promise((r) => setTimeout(r, 100));
  return {
    dir, socket,
    async stop() {
      child.kill("SIGTERM");
      assert.equal(await exited, 0, "airlockd did not drain and exit cleanly");
      assert.deepEqual(qemuUnder(dir + "/"), [], "QEMU left running");
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function answers(socket) {
  return new Promise((resolve) => {
    const connection = net.connect(socket, () => {
      connection.end();
      resolve(true);
    });
    connection.on("error", () => resolve(false));
  });
}

// One request to airlockd, for checking what the MCP server did.
export function daemonGet(socket, method, target) {
  return new Promise((resolve, reject) => {
    import("node:http").then(({ default: http }) => {
      const request = http.request({ socketPath: socket, method, path: target, headers: { Connection: "close" } }, (response) => {
        const chunks = [];
        response.on("data", (chunk) => chunks.push(chunk));
        response.on("end", () => resolve({ status: response.statusCode, body: JSON.parse(Buffer.concat(chunks).toString() || "{}") }));
      });
      request.on("error", reject);
      request.end();
    });
  });
}

export async function freePort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export async function call(client, name, args) {
  return client.callTool({ name, arguments: args }, undefined, { timeout: 300_000 });
}

export function text(result) {
  return result.content.map((part) => part.text).join("\n");
}
