// hash: a chain of SHA-256 hashes -- the nodejs twin of actions/src/hash.c and actions/python/hash.py.
//
// params {"input": str = "pywhisk", "iterations": int = 1000} -> {"hash": hex, "iterations": n}
//   d_1     = SHA-256(UTF-8 bytes of input)
//   d_(k+1) = SHA-256(d_k)      -- the 32 raw digest bytes, not their hex
//   hash    = hex of d_n,  n = iterations clamped to [1, 1e9] (truncated toward 0)
// A non-string input means the default; the input ends at its first NUL (like the C string).
// SHA-256 (FIPS 180-4) is written here in plain JavaScript, like the C version and unlike the
// Python one (hashlib): Node's crypto is a built-in the WASM engine does not have, and the same
// file runs on Docker (nodejs:18) and on WASM.

// args[key] as a number if it is a JSON number or a numeric string (like minijson.h's strtod and
// the Python twin's float()), else null: true, "abc", "0x10" and "" mean the default.
function number(args, key) {
  const v = args ? args[key] : undefined;
  if (typeof v === "number") return v;
  if (typeof v !== "string") return null;
  if (/^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$/.test(v)) return parseFloat(v);
  const special = /^\s*([+-]?)(inf|infinity|nan)\s*$/i.exec(v);
  if (special === null) return null;
  if (special[2].toLowerCase() === "nan") return NaN;
  return special[1] === "-" ? -Infinity : Infinity;
}

const K = new Int32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);
const IV = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];

// One 64-byte block p[off..off+64) into the state h (32-bit words kept as int32: |0 wraps mod 2^32).
function sha256Block(h, w, p, off) {
  for (let i = 0; i < 16; i++) {
    const j = off + 4 * i;
    w[i] = (p[j] << 24) | (p[j + 1] << 16) | (p[j + 2] << 8) | p[j + 3];
  }
  for (let i = 16; i < 64; i++) {
    const x = w[i - 15];
    const y = w[i - 2];
    const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
    const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
    w[i] = (w[i - 16] + s0 + w[i - 7] + s1) | 0;
  }
  let a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
  for (let i = 0; i < 64; i++) {
    const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
    const t1 = (hh + S1 + ((e & f) ^ (~e & g)) + K[i] + w[i]) | 0;
    const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
    const t2 = (S0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
    hh = g; g = f; f = e; e = (d + t1) | 0; d = c; c = b; b = a; a = (t1 + t2) | 0;
  }
  h[0] = (h[0] + a) | 0; h[1] = (h[1] + b) | 0; h[2] = (h[2] + c) | 0; h[3] = (h[3] + d) | 0;
  h[4] = (h[4] + e) | 0; h[5] = (h[5] + f) | 0; h[6] = (h[6] + g) | 0; h[7] = (h[7] + hh) | 0;
}

// SHA-256 of the bytes data (a Uint8Array): the message padded to whole blocks, then the digest.
function sha256(data) {
  const bits = data.length * 8;
  const padded = new Uint8Array((data.length + 9 + 63) & ~63);
  padded.set(data);
  padded[data.length] = 0x80;
  // The bit length as a 64-bit big-endian integer; inputs here are far below 2^53 bits.
  const view = new DataView(padded.buffer);
  view.setUint32(padded.length - 8, Math.floor(bits / 0x100000000));
  view.setUint32(padded.length - 4, bits >>> 0);
  const h = new Int32Array(IV);
  const w = new Int32Array(64);
  for (let off = 0; off < padded.length; off += 64) sha256Block(h, w, padded, off);
  const out = new Uint8Array(32);
  for (let i = 0; i < 8; i++) new DataView(out.buffer).setInt32(4 * i, h[i]);
  return out;
}

// UTF-8 of a JS string; a lone surrogate becomes U+FFFD, as in the C and Python twins.
function utf8(text) {
  const bytes = [];
  for (let i = 0; i < text.length; i++) {
    let cp = text.charCodeAt(i);
    if (cp >= 0xd800 && cp < 0xdc00 && i + 1 < text.length) {
      const lo = text.charCodeAt(i + 1);
      if (lo >= 0xdc00 && lo < 0xe000) {
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        i++;
      }
    }
    if (cp >= 0xd800 && cp < 0xe000) cp = 0xfffd;
    if (cp < 0x80) bytes.push(cp);
    else if (cp < 0x800) bytes.push(0xc0 | (cp >> 6), 0x80 | (cp & 0x3f));
    else if (cp < 0x10000) bytes.push(0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f));
    else bytes.push(0xf0 | (cp >> 18), 0x80 | ((cp >> 12) & 0x3f), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f));
  }
  return new Uint8Array(bytes);
}

function hex(bytes) {
  let s = "";
  for (const b of bytes) s += (b < 16 ? "0" : "") + b.toString(16);
  return s;
}

function main(args) {
  let text = args ? args.input : undefined;
  if (typeof text !== "string") text = "pywhisk";
  const data = utf8(text.split("\0", 1)[0]);

  let n = 1000;
  const d = number(args, "iterations");
  if (d !== null) n = !(d >= 1) ? 1 : d > 1e9 ? 1000000000 : Math.trunc(d);

  console.log(`hash: ${n} x sha256 over ${data.length} input bytes`);
  let digest = sha256(data);
  for (let i = 1; i < n; i++) digest = sha256(digest);
  return { hash: hex(digest), iterations: n };
}
