// What one MCP session owns: the sandboxes it created (or forked) and did not
// ask to keep. They are destroyed when the session ends: its stdio closes,
// its HTTP session is deleted or idles out, or the server stops.
import { DaemonError } from "./daemon.mjs";

export class Session {
  constructor(daemon, log) {
    this.daemon = daemon;
    this.log = log;
    this.owned = new Map(); // sandbox id -> { keep }
    this.closed = false;
  }

  adopt(id, keep) {
    this.owned.set(id, { keep: Boolean(keep) });
  }

  forget(id) {
    this.owned.delete(id);
  }

  ownership(id) {
    const entry = this.owned.get(id);
    if (!entry) return "not created by this session";
    return entry.keep ? "this session's, kept when it ends" : "this session's, destroyed when it ends";
  }

  // Destroys what is not kept; never throws (a sandbox already gone is fine).
  async close() {
    if (this.closed) return;
    this.closed = true;
    const doomed = [...this.owned].filter(([, entry]) => !entry.keep).map(([id]) => id);
    await Promise.all(doomed.map(async (id) => {
      try {
        await this.daemon.request("DELETE", `/v1/sandboxes/${id}`, undefined, { timeoutMs: 60_000 });
      } catch (error) {
        if (!(error instanceof DaemonError && error.status === 404)) this.log(`could not destroy ${id}: ${error.message}`);
      }
    }));
    this.owned.clear();
  }
}
