// net: the I/O stand-in -- the nodejs twin of actions/src/net.c and actions/python/net.py: blocks
// ms milliseconds without using the CPU, like waiting on a network call.
//
// params {"ms": int = 300} -> {"blocked_ms": ms}; ms clamped to [0, 1e12] (truncated toward 0).
// A timer, not a busy loop, so no CPU is used. Plain JavaScript, no Node built-ins (setTimeout is
// a global on Node and in the WASM engine): the same file runs on Docker (nodejs:18) and on WASM.

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

// setTimeout takes at most 2^31-1 ms (a longer delay fires at once on Node), so wait in slices.
const MAX_TIMER_MS = 2147483647;

async function block(ms) {
  for (let left = ms; left > 0; left -= MAX_TIMER_MS) {
    await new Promise((resolve) => setTimeout(resolve, Math.min(left, MAX_TIMER_MS)));
  }
}

async function main(args) {
  let ms = 300;
  const d = number(args, "ms");
  if (d !== null) ms = !(d > 0) ? 0 : d > 1e12 ? 1000000000000 : Math.trunc(d);
  console.log(`net: blocking ${ms} ms`);
  await block(ms);
  return { blocked_ms: ms };
}
