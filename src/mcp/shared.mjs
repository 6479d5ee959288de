// What the MCP tools share: the schemas of their common inputs, and the
// shapes of an answer and of a failure as a model reads them.
import path from "node:path/posix";
import { z } from "zod";

import { DaemonError } from "./daemon.mjs";

export const HOME = "/home/sandbox";

export const language = z.enum(["python", "javascript", "shell", "go"]).describe("the interpreter: python (python3), javascript (node), shell (sh) or go (built, then run)");
export const image = z.string().regex(/^[a-z0-9_][a-z0-9._-]{0,63}$/).optional()
  .describe("the root filesystem, when not the language's own: python-data (numpy, pandas, scipy, matplotlib, scikit-learn, already imported); every image has curl, git, jq and the other common tools");
export const network = z.union([z.enum(["none", "full"]), z.array(z.string().min(1)).min(1).max(64)])
  .describe('"none" (no network device), "full" (if airlockd allows it), or the domain names the sandbox may reach');
export const sandboxId = z.string().regex(/^sb-[0-9a-f]{32}$/).describe("a sandbox id (sb-...), from create_sandbox or list_sandboxes");
export const keep = z.boolean().default(false)
  .describe("keep the sandbox after this MCP session ends (by default it is destroyed then); it still ends at its ttl");

export function policyOf(value) {
  if (value === undefined || value === "none") return "none";
  if (value === "full") return "full";
  return `allow:${value.join(",")}`;
}

// A path in the sandbox: relative ones are under /home/sandbox.
export function sandboxPath(value) {
  const absolute = value.startsWith("/") ? value : path.join(HOME, value);
  return path.normalize(absolute).replace(/\/+$/, "") || "/";
}

export function answer(structured, text) {
  return { content: [{ type: "text", text: text ?? JSON.stringify(structured, null, 2) }], structuredContent: structured };
}

// A failure as the model should read it: what was wrong, and whether trying
// again may help. Never thrown at the SDK (which would hide the code).
export function failure(error) {
  if (error instanceof DaemonError) {
    const retry = error.retryable ? " (retryable: try again shortly)" : "";
    return { isError: true, content: [{ type: "text", text: `${error.code}: ${error.message}${retry}` }],
             structuredContent: { error: { code: error.code, message: error.message, retryable: error.retryable } } };
  }
  return { isError: true, content: [{ type: "text", text: `error: ${error.message}` }],
           structuredContent: { error: { code: "internal", message: error.message, retryable: false } } };
}

export function guarded(handler) {
  return async (input, extra) => {
    try {
      return await handler(input, extra);
    } catch (error) {
      return failure(error);
    }
  };
}

