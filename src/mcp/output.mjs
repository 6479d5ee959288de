// What a tool call may hand back: at most `cap` bytes of program output per
// call, so that one chatty program cannot flood an LLM's context. The cap is
// stated in every tool's description, and a cut says how much it left out.

// The bytes of an encoded field of the API (RunResult, Exec).
export function bytesOf(text, encoding) {
  if (text === undefined || text === null) return Buffer.alloc(0);
  return encoding === "base64" ? Buffer.from(text, "base64") : Buffer.from(text, "utf8");
}

// Bytes as text for a model: UTF-8 when they are, else base64, said so.
export function textOf(bytes) {
  const text = bytes.toString("utf8");
  if (Buffer.from(text, "utf8").equals(bytes)) return { text, encoding: "utf-8" };
  return { text: bytes.toString("base64"), encoding: "base64" };
}

// A stream's bytes within `budget`: its head and its tail (errors tend to be
// at the end), the middle left out with a line saying how many bytes.
export function headAndTail(bytes, budget) {
  if (bytes.length <= budget) return { bytes, omitted: 0 };
  const head = Math.floor(budget / 4);
  const tail = budget - head;
  const note = Buffer.from(`\n[... ${bytes.length - budget} bytes left out: the output cap is ${budget} bytes here ...]\n`);
  return { bytes: Buffer.concat([bytes.subarray(0, head), note, bytes.subarray(bytes.length - tail)]), omitted: bytes.length - budget };
}

// Splits a call's cap between stdout and stderr: each gets what it needs when
// both fit, else stderr gets at most a quarter unless stdout needs less.
export function splitCap(cap, stdoutLength, stderrLength) {
  if (stdoutLength + stderrLength <= cap) return [stdoutLength, stderrLength];
  const stderrShare = Math.min(stderrLength, Math.max(Math.floor(cap / 4), cap - stdoutLength));
  return [cap - stderrShare, stderrShare];
}

// Both streams within one call's cap, as an answer's fields: `stdout`,
// `stdout_encoding`, `stdout_omitted_bytes` (+ `lost[name]` bytes already
// gone before), and the same for stderr.
export function cappedStreams(stdout, stderr, cap, lost = { stdout: 0, stderr: 0 }) {
  const fields = {};
  const shares = splitCap(cap, stdout.length, stderr.length);
  for (const [index, [name, bytes]] of [["stdout", stdout], ["stderr", stderr]].entries()) {
    const shown = headAndTail(bytes, shares[index]);
    const text = textOf(shown.bytes);
    fields[name] = text.text;
    fields[`${name}_encoding`] = text.encoding;
    fields[`${name}_omitted_bytes`] = shown.omitted + lost[name];
  }
  return fields;
}

// A stream's section of an answer's text, or nothing when it is empty.
export function streamLines(answer, name) {
  if (!answer[name]) return [];
  const note = answer[`${name}_encoding`] === "base64" ? " (not UTF-8: base64)" : "";
  return [`--- ${name}${note} ---`, answer[name].replace(/\n$/, "")];
}

// "status S, exit code N, signal K": how a program ended, for an answer's text.
export function endedText(answer) {
  return `status ${answer.status}` +
         (answer.exit_code !== null && answer.exit_code !== undefined ? `, exit code ${answer.exit_code}` : "") +
         (answer.signal ? `, signal ${answer.signal}` : "");
}

// A RunResult (of /v1/run or a waited exec) as a tool's answer.
export function runAnswer(result, cap) {
  const answer = {
    status: result.status,
    exit_code: result.exit_code,
    signal: result.signal,
    ...cappedStreams(bytesOf(result.stdout, result.stdout_encoding), bytesOf(result.stderr, result.stderr_encoding), cap),
    stdout_truncated_by_limit: result.stdout_truncated,
    stderr_truncated_by_limit: result.stderr_truncated,
    duration_ms: result.timing?.total_ms,
    error: result.error,
  };
  if (result.network_denied?.length) answer.network_denied = result.network_denied;
  return answer;
}

// The text a model reads for a run's answer (the same facts as the structured one).
export function runText(answer) {
  const lines = [endedText(answer).replace(/^status /, "status: ") +
                 (answer.duration_ms !== undefined ? ` (${answer.duration_ms} ms)` : "")];
  if (answer.error) lines.push(`error: ${answer.error}`);
  if (answer.network_denied) lines.push(`network denied: ${answer.network_denied.join("; ")}`);
  lines.push(...streamLines(answer, "stdout"), ...streamLines(answer, "stderr"));
  if (answer.stdout_truncated_by_limit || answer.stderr_truncated_by_limit) {
    lines.push("(the program wrote more than its output limit; the rest was dropped in the sandbox)");
  }
  return lines.join("\n");
}
