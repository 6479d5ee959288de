// The MCP tools: each a thin call of airlockd's API (docs/api.yaml), with
// an input schema, annotations saying what it may change, and its program
// output capped per call (output.mjs).
import { z } from "zod";

import { registerExecTools } from "./exec_tools.mjs";
import { runAnswer, runText, textOf } from "./output.mjs";
import { answer, guarded, HOME, image, keep, language, network, policyOf, sandboxId, sandboxPath } from "./shared.mjs";

function sandboxSummary(sandbox, session) {
  return {
    id: sandbox.id, state: sandbox.state, stop_reason: sandbox.stop_reason, language: sandbox.language,
    memory_mb: sandbox.memory_mb, cpus: sandbox.cpus, network: sandbox.network,
    expires_in_s: Math.max(0, Math.round((sandbox.expires_at_ms - Date.now()) / 1000)),
    idle_timeout_s: sandbox.idle_timeout_s, running_execs: sandbox.running_execs,
    origin_snapshot: sandbox.origin_snapshot, ownership: session.ownership(sandbox.id),
  };
}

export function registerTools(server, { daemon, session, cap }) {
  const capNote = `Program output in the answer is capped at ${cap} bytes per call (stdout and stderr together; past it the middle is left out and the answer says how many bytes).`;

  server.registerTool("run_code", {
    title: "Run code in a fresh microVM",
    description: `Runs a program in a new, isolated microVM that is destroyed afterwards (nothing persists between calls: use create_sandbox for state). Answers its status (ok, error, timeout, oom, output_limit, killed), exit code, stdout and stderr. ${capNote}`,
    inputSchema: {
      language, image, code: z.string().min(1).max(1_048_576).describe("the program's source (shell: a script for sh)"),
      timeout_s: z.number().int().min(1).max(300).default(30).describe("wall-clock limit; the VM is killed past it"),
      network: network.default("none"), stdin: z.string().max(1_048_576).optional().describe("text for its stdin"),
    },
    annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: true },
  }, guarded(async ({ language: lang, image: root, code, timeout_s, network: net, stdin }) => {
    const body = { language: lang, code, timeout_s, network: policyOf(net) };
    if (root) body.image = root;
    if (stdin) body.stdin = stdin;
    const result = await daemon.json("POST", "/v1/run", body, { timeoutMs: (timeout_s + 60) * 1000 });
    const shown = runAnswer(result, cap);
    return answer(shown, runText(shown));
  }));

  server.registerTool("create_sandbox", {
    title: "Create a sandbox that lives",
    description: "Creates a long-lived microVM sandbox (its files and processes persist between exec calls) and answers its id. It is destroyed when this MCP session ends unless keep is true, and in any case when its ttl passes or it has been idle for idle_timeout_s.",
    inputSchema: {
      language: language.default("python"), image,
      memory_mb: z.number().int().min(128).max(2048).default(512),
      cpus: z.number().int().min(1).max(8).default(1),
      network: network.default("none"),
      ttl_s: z.number().int().min(1).max(86400).default(3600).describe("its lifetime from now"),
      idle_timeout_s: z.number().int().min(1).max(86400).default(600).describe("destroyed after this long with no exec, file operation or touch"),
      keep,
    },
    annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: true },
  }, guarded(async (input) => {
    const body = { language: input.language, memory_mb: input.memory_mb, cpus: input.cpus, network: policyOf(input.network),
                   ttl_s: input.ttl_s, idle_timeout_s: Math.min(input.idle_timeout_s, input.ttl_s) };
    if (input.image) body.image = input.image;
    const sandbox = await daemon.json("POST", "/v1/sandboxes", body, { timeoutMs: 120_000 });
    session.adopt(sandbox.id, input.keep);
    const summary = sandboxSummary(sandbox, session);
    return answer(summary, `created ${sandbox.id} (${sandbox.language}, ${sandbox.memory_mb} MiB, network ${sandbox.network}); ` +
                           `${summary.ownership}; home directory ${HOME}\n${JSON.stringify(summary, null, 2)}`);
  }));

  server.registerTool("list_sandboxes", {
    title: "List sandboxes",
    description: "Every sandbox airlockd has (live, and those stopped in the last 10 minutes, with why), and which ones this session created.",
    inputSchema: {},
    annotations: { readOnlyHint: true, openWorldHint: false },
  }, guarded(async () => {
    const { sandboxes } = await daemon.json("GET", "/v1/sandboxes");
    return answer({ sandboxes: sandboxes.map((sandbox) => sandboxSummary(sandbox, session)) });
  }));

  server.registerTool("list_images", {
    title: "List images",
    description: "The images run_code and create_sandbox can name (image): the built ones and those imported or pulled on the host, " +
                 "each with the languages it has (the first is what a request naming none gets).",
    inputSchema: {},
    annotations: { readOnlyHint: true, openWorldHint: false },
  }, guarded(async () => {
    const { images } = await daemon.json("GET", "/v1/images");
    const list = images.map(({ name, origin, languages }) => ({ name, origin, languages }));
    return answer({ images: list }, list.map((image) => `${image.name} (${image.origin}): ${image.languages.join(", ")}`).join("\n"));
  }));

  server.registerTool("destroy_sandbox", {
    title: "Destroy a sandbox",
    description: "Destroys a sandbox: its VM, files and running programs are gone.",
    inputSchema: { sandbox_id: sandboxId },
    annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
  }, guarded(async ({ sandbox_id }) => {
    const sandbox = await daemon.json("DELETE", `/v1/sandboxes/${sandbox_id}`, undefined, { timeoutMs: 60_000 });
    session.forget(sandbox_id);
    return answer({ id: sandbox.id, state: sandbox.state }, `destroyed ${sandbox.id}`);
  }));

  registerExecTools(server, { daemon, cap, capNote });

  server.registerTool("write_file", {
    title: "Write a file into a sandbox",
    description: `Writes a file in a sandbox as its user (missing directories are made; an existing file is replaced whole). Relative paths are under ${HOME}.`,
    inputSchema: {
      sandbox_id: sandboxId, path: z.string().min(1).max(4096),
      content: z.string().max(16 * 1024 * 1024).describe("the file's contents"),
      encoding: z.enum(["utf-8", "base64"]).default("utf-8").describe("how content is written: text, or base64 for binary"),
      mode: z.string().regex(/^[0-7]{3}$/).default("644").describe("permission bits, octal"),
    },
    annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
  }, guarded(async ({ sandbox_id, path: where, content, encoding, mode }) => {
    const target = sandboxPath(where);
    const bytes = encoding === "base64" ? Buffer.from(content, "base64") : Buffer.from(content, "utf8");
    const written = await daemon.json("PUT", `/v1/sandboxes/${sandbox_id}/files?path=${encodeURIComponent(target)}&mode=${mode}`, bytes, { timeoutMs: 120_000 });
    return answer(written, `wrote ${written.bytes} bytes to ${written.path}`);
  }));

  server.registerTool("read_file", {
    title: "Read a file of a sandbox",
    description: `Reads a file of a sandbox, at most ${cap} bytes per call: pass offset to read on. Text comes as UTF-8, anything else as base64. Relative paths are under ${HOME}.`,
    inputSchema: {
      sandbox_id: sandboxId, path: z.string().min(1).max(4096),
      offset: z.number().int().min(0).default(0).describe("the first byte to read"),
      max_bytes: z.number().int().min(1).max(cap).default(cap),
    },
    annotations: { readOnlyHint: true, openWorldHint: false },
  }, guarded(async ({ sandbox_id, path: where, offset, max_bytes }) => {
    const target = sandboxPath(where);
    const query = `?path=${encodeURIComponent(target)}`;
    const entry = await daemon.json("GET", `/v1/sandboxes/${sandbox_id}/stat${query}`);
    if (entry.type !== "file") throw new Error(`${target} is a ${entry.type}, not a file (list_files lists a directory)`);
    const stop = Math.min(entry.size, offset + max_bytes);
    const { body } = await daemon.request("GET", `/v1/sandboxes/${sandbox_id}/files${query}`, undefined, { timeoutMs: 120_000, maxBytes: stop });
    const shown = textOf(body.subarray(offset, stop));
    const rest = entry.size - stop;
    const structured = { path: target, size: entry.size, offset, bytes: Math.max(0, stop - offset), content: shown.text, encoding: shown.encoding,
                         next_offset: rest > 0 ? stop : null };
    const header = `${target}: ${entry.size} bytes; bytes ${offset}-${stop} shown${shown.encoding === "base64" ? " as base64 (not UTF-8)" : ""}` +
                   (rest > 0 ? `; ${rest} more: read on with offset ${stop}` : "");
    return answer(structured, `${header}\n${shown.text}`);
  }));

  server.registerTool("list_files", {
    title: "List a directory of a sandbox",
    description: `Lists a directory of a sandbox (name, type, size, mode, mtime), sorted by name, at most 1000 entries. Relative paths are under ${HOME}.`,
    inputSchema: { sandbox_id: sandboxId, path: z.string().min(1).max(4096).default(HOME) },
    annotations: { readOnlyHint: true, openWorldHint: false },
  }, guarded(async ({ sandbox_id, path: where }) => {
    const target = sandboxPath(where);
    const listing = await daemon.json("GET", `/v1/sandboxes/${sandbox_id}/list?path=${encodeURIComponent(target)}&max_entries=1000`);
    const entries = listing.entries.map((e) => ({ name: e.name, type: e.type, size: e.size, mode: e.mode.toString(8).padStart(3, "0"),
                                                  mtime: new Date(e.mtime_ms).toISOString() }));
    const lines = entries.map((e) => `${e.type === "directory" ? "d" : e.type === "symlink" ? "l" : "-"} ${e.mode} ${String(e.size).padStart(10)} ${e.mtime} ${e.name}`);
    return answer({ path: listing.path, entries, truncated: listing.truncated },
                  `${listing.path}: ${entries.length} entries${listing.truncated ? " (more not shown)" : ""}\n${lines.join("\n")}`);
  }));

  server.registerTool("snapshot", {
    title: "Snapshot a sandbox",
    description: "Saves a running sandbox whole (memory, processes, files) as a named snapshot, while it goes on running; airlockd keeps it until it is deleted (`airlock rm-snapshot`), and restore_snapshot starts new sandboxes from it.",
    inputSchema: { sandbox_id: sandboxId, name: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/).optional().describe("a unique name to restore it by (not starting with snap-); default: its id") },
    annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false },
  }, guarded(async ({ sandbox_id, name }) => {
    const snapshot = await daemon.json("POST", `/v1/sandboxes/${sandbox_id}/snapshots`, name ? { name } : {}, { timeoutMs: 300_000 });
    const taken = { id: snapshot.id, name: snapshot.name, source_sandbox: snapshot.source_sandbox, paused_ms: snapshot.paused_ms,
                    total_ms: snapshot.total_ms, size_bytes: snapshot.size_bytes };
    return answer(taken, `snapshot ${snapshot.id} (${snapshot.name}) of ${sandbox_id} taken; the sandbox was paused ` +
                         `${snapshot.paused_ms} ms and goes on running; restore it with restore_snapshot`);
  }));

  server.registerTool("restore_snapshot", {
    title: "Start a sandbox from a snapshot",
    description: "Starts a new sandbox from a snapshot (by id or name): its processes, memory and files as they were. Owned by this session like create_sandbox's.",
    inputSchema: { snapshot: z.string().min(1).max(128).describe("a snapshot's id or name"), keep },
    annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false },
  }, guarded(async ({ snapshot, keep: kept }) => {
    const sandbox = await daemon.json("POST", `/v1/snapshots/${encodeURIComponent(snapshot)}/restore`, {}, { timeoutMs: 120_000 });
    session.adopt(sandbox.id, kept);
    return answer(sandboxSummary(sandbox, session), `restored ${snapshot} as ${sandbox.id}`);
  }));

  server.registerTool("fork", {
    title: "Fork a sandbox into copies",
    description: "Makes count new sandboxes, each a live copy of this one as it is now (processes, memory, files), each with a fresh identity and random seed. Answers each copy's id or why it could not be made. The copies belong to this session.",
    inputSchema: { sandbox_id: sandboxId, count: z.number().int().min(1).max(16).default(2), keep },
    annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false },
  }, guarded(async ({ sandbox_id, count, keep: kept }) => {
    const forked = await daemon.json("POST", `/v1/sandboxes/${sandbox_id}/fork`, { count }, { timeoutMs: 300_000 });
    const copies = forked.copies.map((copy) => {
      if (!copy.sandbox) return { error: copy.error };
      session.adopt(copy.sandbox.id, kept);
      return { id: copy.sandbox.id };
    });
    const made = copies.filter((copy) => copy.id).length;
    return answer({ snapshot_ms: forked.snapshot_ms, copies },
                  `${made} of ${count} copies of ${sandbox_id} made\n` + copies.map((c) => c.id ?? `failed: ${c.error.message}`).join("\n"));
  }));
}

