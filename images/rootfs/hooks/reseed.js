// Airlock: loaded into every Node process of a sandbox (NODE_OPTIONS
// --require). A copy of a live sandbox (a restore, a fork) sends every
// process SIGURG once it runs; generators that this process seeded once,
// and that every copy of it would repeat, are made fresh then from the
// copy's own kernel RNG: Math.random is replaced by a generator seeded so,
// and what OpenSSL's generator inside `crypto` gives (its state is the same
// in every copy) is XORed with a keystream keyed so. docs/snapshots.md.
'use strict';

function freshBytes(n) {
  const fs = require('fs');
  const bytes = Buffer.alloc(n);
  const fd = fs.openSync('/dev/urandom', 'r');
  try {
    fs.readSync(fd, bytes, 0, n, null);
  } finally {
    fs.closeSync(fd);
  }
  return bytes;
}

// xoshiro128** over 32-bit words: 53 random bits per double, as V8's own.
function seededRandom(seed) {
  const s = new Uint32Array(4);
  for (let i = 0; i < 4; i++) s[i] = seed.readUInt32LE(4 * i) || 0x9e3779b9 + i;
  const rotl = (x, k) => (x << k) | (x >>> (32 - k));
  const next = () => {
    const result = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  };
  return function random() {
    return ((next() >>> 5) * 67108864 + (next() >>> 6)) / 9007199254740992;
  };
}

function maskCrypto(crypto, key) {
  let counter = 0n;
  const mask = (view) => {
    const bytes = Buffer.from(view.buffer, view.byteOffset, view.byteLength);
    for (let offset = 0; offset < bytes.length; offset += 32) {
      const block = Buffer.alloc(8);
      block.writeBigUInt64LE(counter++);
      const stream = crypto.createHmac('sha256', key).update(block).digest();
      for (let i = 0; i < 32 && offset + i < bytes.length; i++) bytes[offset + i] ^= stream[i];
    }
    return view;
  };
  const range = (view, offset, size) => {
    const start = offset === undefined ? 0 : offset;
    const end = size === undefined ? view.byteLength : start + size;
    mask(new Uint8Array(view.buffer || view, (view.byteOffset || 0) + start, end - start));
  };
  const { randomBytes, randomFillSync, randomFill } = crypto;
  crypto.randomBytes = function (size, callback) {
    if (typeof callback !== 'function') return mask(randomBytes(size));
    return randomBytes(size, (error, bytes) => callback(error, error ? bytes : mask(bytes)));
  };
  crypto.pseudoRandomBytes = crypto.randomBytes;
  crypto.randomFillSync = function (view, offset, size) {
    randomFillSync(view, offset, size);
    range(view, offset, size);
    return view;
  };
  crypto.randomFill = function (view, ...rest) {
    const callback = rest.pop();
    const [offset, size] = rest;
    return randomFill(view, ...rest, (error, filled) => {
      if (!error) range(filled, offset, size);
      callback(error, filled);
    });
  };
  const webcrypto = crypto.webcrypto;
  if (webcrypto) {
    const getRandomValues = webcrypto.getRandomValues.bind(webcrypto);
    const masked = (view) => mask(getRandomValues(view));
    for (const owner of [webcrypto, crypto]) {
      try {
        Object.defineProperty(owner, 'getRandomValues', { value: masked, configurable: true, writable: true });
      } catch (error) {
        // Not configurable where Node defines it so: left as it is.
      }
    }
  }
  crypto.randomUUID = function randomUUID() {
    const bytes = crypto.randomBytes(16);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    const hex = bytes.toString('hex');
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  };
  crypto.randomInt = function randomInt(min, max, callback) {
    if (typeof max !== 'number') {
      callback = max;
      max = min;
      min = 0;
    }
    const span = max - min;
    if (!Number.isSafeInteger(min) || !Number.isSafeInteger(max) || span <= 0 || span > 2 ** 48) {
      throw new RangeError('randomInt: need safe integers with 0 < max - min <= 2**48');
    }
    // Rejection sampling over 48 bits: no bias toward small values.
    const limit = 2 ** 48 - (2 ** 48 % span);
    let value;
    do value = crypto.randomBytes(6).readUIntLE(0, 6);
    while (value >= limit);
    const result = min + (value % span);
    if (typeof callback === 'function') {
      process.nextTick(callback, null, result);
      return undefined;
    }
    return result;
  };
}

process.on('SIGURG', () => {
  // Never the end of the program it runs in: a hook that fails leaves the
  // generators as they were, and says so.
  try {
    Math.random = seededRandom(freshBytes(16));
    maskCrypto(require('crypto'), freshBytes(32));
  } catch (error) {
    process.emitWarning(`airlock: reseeding after a copy failed: ${error}`);
  }
});
