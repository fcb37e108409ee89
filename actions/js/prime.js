// prime: the n-th prime -- the nodejs twin of actions/src/prime.c and actions/python/prime.py.
//
// params {"n": int = 10000} -> {"prime": p, "n": n}; n clamped to [1, 1e8] (truncated toward 0),
// 1-indexed (n=1 -> 2). Same algorithm as the C version: 2 is the first prime, then each odd
// candidate 3, 5, 7, ... is tested by trial division by 3, 5, ... while d*d <= c.
// Plain JavaScript, no Node built-ins: the same file runs on Docker (nodejs:18) and on WASM.

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

function isOddPrime(c) {
  for (let d = 3; d * d <= c; d += 2) {
    if (c % d === 0) return false;
  }
  return true;
}

function main(args) {
  let n = 10000;
  const d = number(args, "n");
  if (d !== null) n = !(d >= 1) ? 1 : d > 1e8 ? 100000000 : Math.trunc(d);
  console.log(`prime: searching for prime #${n}`);

  let p = 2;
  let count = 1;
  for (let c = 3; count < n; c += 2) {
    if (isOddPrime(c)) {
      count += 1;
      p = c;
    }
  }
  return { prime: p, n: n };
}
