// Commands in a sandbox as sessions: `exec` starts one and waits a while for
// it; one that goes on answers its id and a cursor, and `exec_poll` reads
// what it wrote since that cursor. `exec_write_stdin` and `exec_signal` act
// on it while it runs. Every exec runs in the background on airlockd's side
// (POST .../execs with background), so nothing is lost when a call returns.
import { z } from "zod";

import { bytesOf, cappedStreams, endedText, streamLines } from "./output.mjs";
import { answer, guarded, HOME, sandboxId } from "./shared.mjs";

const execId = z.string().regex(/^ex-[0-9]+$/).describe("an exec id (ex-...), from exec");
const cursorPattern = /^(\d+):(\d+)$/;
const cursor = z.string().regex(cursorPattern).describe('where the last answer stopped ("stdout bytes:stderr bytes"); "0:0" for the start');

// An exec's output streams with where they start: airlockd keeps the last
// 1 MiB of each, and counts what it dropped before that.
function streamsOf(exec) {
  const source = exec.state === "exited" && exec.result ? exec.result : exec;
  const make = (name) => {
    const kept = bytesOf(exec[name] ?? source[name], exec[name] !== undefined ? exec[`${name}_encoding`] : source[`${name}_encoding`]);
    const dropped = exec[`${name}_dropped`] ?? 0;
    return { kept, start: dropped, end: dropped + kept.length };
  };
  return { stdout: make("stdout"), stderr: make("stderr") };
}

function parseCursor(text) {
  const [, out, err] = cursorPattern.exec(text ?? "0:0");
  return { stdout: Number(out), stderr: Number(err) };
}

function hasNews(exec, from) {
  const streams = streamsOf(exec);
  return exec.state === "exited" || streams.stdout.end > from.stdout || streams.stderr.end > from.stderr;
}

// What an exec wrote since `from`, within the cap, and where the next read starts.
function since(exec, from, cap) {
  const streams = streamsOf(exec);
  const fresh = {};
  const lost = {};
  for (const name of ["stdout", "stderr"]) {
    const stream = streams[name];
    const begin = Math.max(from[name], stream.start);
    fresh[name] = stream.kept.subarray(Math.max(0, begin - stream.start));
    lost[name] = Math.max(0, stream.start - from[name]);
  }
  const structured = { exec_id: exec.id, state: exec.state, ...cappedStreams(fresh.stdout, fresh.stderr, cap, lost) };
  if (exec.state === "exited" && exec.result) {
    structured.status = exec.result.status;
    structured.exit_code = exec.result.exit_code;
    structured.signal = exec.result.signal;
    structured.error = exec.result.error;
    structured.duration_ms = exec.result.timing?.total_ms;
  }
  structured.cursor = `${streams.stdout.end}:${streams.stderr.end}`;
  return structured;
}

function execText(s) {
  const lines = [];
  if (s.state === "exited") {
    lines.push(`${s.exec_id} ended: ${endedText(s)}` + (s.error ? ` (${s.error})` : ""));
  } else {
    lines.push(`${s.exec_id} is still running; call exec_poll with cursor "${s.cursor}" for what it writes next, ` +
               "exec_write_stdin to type into it, exec_signal to stop it");
  }
  for (const name of ["stdout", "stderr"]) {
    if (s[`${name}_omitted_bytes`]) lines.push(`(${s[`${name}_omitted_bytes`]} bytes of ${name} left out)`);
    lines.push(...streamLines(s, name));
  }
  return lines.join("\n");
}

// GET the exec until it has something past `from` (or has ended), or the wait is over.
async function awaitExec(daemon, sandbox, id, from, waitS, untilExit) {
  const deadline = Date.now() + waitS * 1000;
  let pause = 10;
  for (;;) {
    const exec = await daemon.json("GET", `/v1/sandboxes/${sandbox}/execs/${id}`);
    const ready = untilExit ? exec.state === "exited" : hasNews(exec, from);
    if (ready || Date.now() >= deadline) return exec;
    await new Promise((resolve) => setTimeout(resolve, Math.min(pause, Math.max(1, deadline - Date.now()))));
    pause = Math.min(pause * 2, 250);
  }
}

export function registerExecTools(server, { daemon, cap, capNote }) {
  server.registerTool("exec", {
    title: "Run a command in a sandbox",
    description: `Starts a command in a sandbox as its user and waits up to wait_s for it to end. If it ends, the answer has its exit code and output; if not, it goes on running and the answer has its exec_id and a cursor for exec_poll. Files and processes persist in the sandbox between calls. ${capNote} airlockd keeps the last 1 MiB of each stream of a running command.`,
    inputSchema: {
      sandbox_id: sandboxId,
      command: z.union([z.string().min(1), z.array(z.string()).min(1).max(4096)])
        .describe("a shell command line (run by sh -c), or a program and its arguments as a list"),
      cwd: z.string().default(HOME), env: z.record(z.string(), z.string()).optional(),
      stdin: z.string().max(1_048_576).optional().describe("text for its stdin"),
      stdin_open: z.boolean().default(false).describe("keep stdin open after stdin, for exec_write_stdin"),
      timeout_s: z.number().int().min(0).max(3600).default(0).describe("kill it after this long; 0: no limit (it lasts as long as the sandbox)"),
      wait_s: z.number().min(0).max(120).default(30).describe("how long this call waits for it to end"),
    },
    annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: true },
  }, guarded(async (input) => {
    const argv = typeof input.command === "string" ? ["sh", "-c", input.command] : input.command;
    const body = { argv, cwd: input.cwd, background: true, timeout_s: input.timeout_s, stdin_open: input.stdin_open };
    if (input.env) body.env = input.env;
    if (input.stdin) body.stdin = input.stdin;
    const started = await daemon.json("POST", `/v1/sandboxes/${input.sandbox_id}/execs`, body);
    const exec = await awaitExec(daemon, input.sandbox_id, started.id, { stdout: 0, stderr: 0 }, input.wait_s, true);
    const shown = since(exec, { stdout: 0, stderr: 0 }, cap);
    return answer(shown, execText(shown));
  }));

  server.registerTool("exec_poll", {
    title: "Read a running command's output",
    description: `What a command started by exec wrote since a cursor, its state, and its exit once it ended. Waits up to wait_s for something new. ${capNote}`,
    inputSchema: { sandbox_id: sandboxId, exec_id: execId, cursor: cursor.default("0:0"),
                   wait_s: z.number().min(0).max(60).default(10).describe("how long to wait for new output or its end") },
    annotations: { readOnlyHint: true, openWorldHint: false },
  }, guarded(async ({ sandbox_id, exec_id, cursor: at, wait_s }) => {
    const from = parseCursor(at);
    const exec = await awaitExec(daemon, sandbox_id, exec_id, from, wait_s, false);
    const shown = since(exec, from, cap);
    return answer(shown, execText(shown));
  }));

  server.registerTool("exec_write_stdin", {
    title: "Type into a running command",
    description: "Sends text to the stdin of a command started by exec with stdin_open; close ends its stdin (as Ctrl-D).",
    inputSchema: { sandbox_id: sandboxId, exec_id: execId, data: z.string().max(1_048_576).default(""),
                   close: z.boolean().default(false).describe("end its stdin after data") },
    annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false },
  }, guarded(async ({ sandbox_id, exec_id, data, close }) => {
    const taken = await daemon.json("POST", `/v1/sandboxes/${sandbox_id}/execs/${exec_id}/stdin${close ? "?close=1" : ""}`,
                                    Buffer.from(data, "utf8"));
    return answer(taken, `${taken.bytes} bytes sent to ${exec_id}${taken.closed ? "; its stdin is closed" : ""}`);
  }));

  server.registerTool("exec_signal", {
    title: "Signal a running command",
    description: "Sends a signal to a command started by exec (its process group): TERM asks it to stop, KILL stops it, INT is Ctrl-C.",
    inputSchema: { sandbox_id: sandboxId, exec_id: execId,
                   signal: z.enum(["TERM", "KILL", "INT", "HUP", "QUIT", "USR1", "USR2", "STOP", "CONT"]).default("TERM") },
    annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: false },
  }, guarded(async ({ sandbox_id, exec_id, signal }) => {
    const exec = await daemon.json("POST", `/v1/sandboxes/${sandbox_id}/execs/${exec_id}/signal`, { signal });
    return answer({ exec_id: exec.id, state: exec.state }, `SIG${signal} sent to ${exec_id} (${exec.state})`);
  }));
}
