// Airlock's JavaScript code context: one Node process whose global scope
// keeps its variables between cells (top-level let, const and class too:
// each cell is a script of the same realm, as in Node's own REPL). The
// agent starts it (node -e, isolated as an exec is) with a socket at fd 3
// and speaks JSON lines over it (docs/protocol.md, "Code contexts"): a job
// {"code"} in; "result", "display" and "error" events and one "done" out.
// console output goes to fd 1 and 2 (pipes: written synchronously on
// Linux), which the agent drains before it passes an event on.
'use strict';
const net = require('net');
const path = require('path');
const util = require('util');
const vm = require('vm');
const { createRequire } = require('module');

const MAX_JSON = 1 << 20;
const control = new net.Socket({ fd: 3, readable: true, writable: true });
let count = 0;
let interruptAwait = null; // rejects the promise a cell's value is, on SIGINT

globalThis.require = createRequire(path.join(process.cwd(), '[context]'));

function send(message) {
  let line;
  try {
    line = JSON.stringify(message);
  } catch (error) {
    // A form that JSON cannot hold (a BigInt in an error's message): text only.
    const text = { ...message };
    if (message.data) text.data = { 'text/plain': String(message.data['text/plain']) };
    if (message.value !== undefined) text.value = String(message.value);
    if (message.traceback) text.traceback = [];
    line = JSON.stringify(text);
  }
  control.write(line + '\n');
}

function isPlainData(value) {
  if (Array.isArray(value)) return true;
  if (value === null || typeof value !== 'object') return false;
  const prototype = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

// The value as Jupyter's MIME bundle: text/plain always, JSON for plain data.
function bundle(value) {
  const data = { 'text/plain': util.inspect(value, { depth: 4, maxArrayLength: 200 }) };
  if (isPlainData(value)) {
    try {
      const text = JSON.stringify(value);
      if (text !== undefined && text.length <= MAX_JSON) data['application/json'] = JSON.parse(text);
    } catch (error) {
      // Not JSON (a BigInt, a cycle): text/plain alone.
    }
  }
  return data;
}

globalThis.display = (...values) => {
  for (const value of values) send({ type: 'display', data: bundle(value) });
};

function errorEvent(error) {
  if (!(error instanceof Error)) {
    return { type: 'error', name: 'Uncaught', value: util.inspect(error), traceback: ['Uncaught ' + util.inspect(error)] };
  }
  // Frames of this loop ([eval]) and of Node itself are not the user's.
  const traceback = String(error.stack || error)
    .split('\n')
    .filter((line) => !/\(node:|\[eval\]|at node:|evalmachine/.test(line));
  return { type: 'error', name: error.name || 'Error', value: error.message || String(error), traceback };
}

async function runCell(code) {
  count += 1;
  let status = 'ok';
  try {
    const script = new vm.Script(code, { filename: `<cell-${count}>` });
    let value = script.runInThisContext({ breakOnSigint: true, displayErrors: false });
    if (value !== null && typeof value === 'object' && typeof value.then === 'function') {
      value = await new Promise((resolve, reject) => {
        interruptAwait = reject;
        value.then(resolve, reject);
      });
    }
    if (value !== undefined) {
      globalThis._ = value;
      send({ type: 'result', data: bundle(value) });
    }
  } catch (error) {
    status = 'error';
    try {
      const interrupted = error && error.code === 'ERR_SCRIPT_EXECUTION_INTERRUPTED';
      if (interrupted) status = 'interrupted';
      send(interrupted ? { type: 'error', name: 'Interrupted', value: 'the cell was interrupted', traceback: [] } : errorEvent(error));
    } catch (unprintable) {
      send({ type: 'error', name: 'Error', value: '<unprintable error>', traceback: [] });
    }
  } finally {
    interruptAwait = null;
    // Whatever happened above, the cell ends.
    send({ type: 'done', status, execution_count: count });
  }
}

process.on('SIGINT', () => {
  // Only a cell is interrupted (a script by breakOnSigint, a promise here);
  // between cells the signal is nothing.
  if (interruptAwait) {
    const error = new Error('the cell was interrupted');
    error.code = 'ERR_SCRIPT_EXECUTION_INTERRUPTED';
    interruptAwait(error);
  }
});
process.on('uncaughtException', (error) => {
  // A callback of an earlier cell that threw: said on stderr, the context goes on.
  process.stderr.write('Uncaught ' + (error && error.stack ? error.stack : util.inspect(error)) + '\n');
});
process.on('unhandledRejection', (reason) => {
  process.stderr.write('Unhandled rejection: ' + (reason && reason.stack ? reason.stack : util.inspect(reason)) + '\n');
});

let pending = '';
let queue = Promise.resolve();
control.setEncoding('utf8');
control.on('data', (piece) => {
  pending += piece;
  let newline;
  while ((newline = pending.indexOf('\n')) >= 0) {
    const job = JSON.parse(pending.slice(0, newline));
    pending = pending.slice(newline + 1);
    queue = queue.then(() => runCell(job.code)).catch(() => {});
  }
});
control.on('end', () => process.exit(0));
send({ type: 'ready', pid: process.pid });
