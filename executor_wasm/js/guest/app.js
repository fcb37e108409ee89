// The JavaScript runner inside the WebAssembly component (StarlingMonkey, SpiderMonkey's engine, of
// @bytecodealliance/componentize-js).
//
// componentize-js evaluates this module at build time and snapshots the initialised engine (Wizer), so a
// fresh instance starts with the engine, its built-ins and this runner ready. Each export then evaluates
// the action's source in that instance, as OpenWhisk's Node.js runtime does at /init
// (apache/openwhisk-runtime-nodejs core/nodejsActionBase/runner.js, initializeActionHandler) and answers
// as its proxy does (src/service.js, initCode/runCode):
//
// - init: 502 "Initialization has failed due to: <error.stack or error>", the error also on stderr as
//   "Error during initialization:"; a `main` that is not a function is "Function entrypoint 'main' is not a
//   function.".
// - run: a thrown error is 502 "An error has occurred: <error>" with the error's stack on stderr; a rejected
//   promise is a result {"error": serializeError(reason)}; an undefined result is {}; a result that is not
//   an object is 502 "The action did not return a dictionary.".
//
// What Node offers beyond standard JavaScript is not here: `require` of anything fails with the module's
// name and why, and `process` is only `process.env`. An exception must never escape an export: the engine
// aborts the instance on one.

const OK = 200;
const FAILED = 502;
const MEMORY_EXHAUSTED = 0;

const ACTION_FILE = "action.js";
const NOT_A_DICTIONARY = "The action did not return a dictionary.";
const UNSUPPORTED =
  "the WASM executor runs standard JavaScript only (no Node.js built-ins, no npm packages);" +
  " run the action on Docker (kind nodejs:18 without the executor=wasm annotation) to use it";

// ---------------------------------------------------------------------------------------------------------
// console: Node's formatting (util.format and a subset of util.inspect), so that an action logs the same
// lines on Docker and here. StarlingMonkey's console prints a string as is: one formatted string per call.

const engineConsole = globalThis.console;
const toStdout = engineConsole.log.bind(engineConsole);
const toStderr = engineConsole.error.bind(engineConsole);

globalThis.console = {
  log: (...args) => toStdout(format(args)),
  info: (...args) => toStdout(format(args)),
  debug: (...args) => toStdout(format(args)),
  error: (...args) => toStderr(format(args)),
  warn: (...args) => toStderr(format(args)),
  trace: (...args) => toStderr("Trace: " + format(args)),
  dir: (value) => toStdout(inspect(value, 0)),
};

const MAX_DEPTH = 2; // util.inspect's default depth
const BREAK_LENGTH = 80; // util.inspect's default breakLength

function format(args) {
  if (args.length === 0) return "";
  let first = args[0];
  let rest = 1;
  let out;
  if (typeof first === "string") {
    out = "";
    let last = 0;
    for (let i = 0; i < first.length - 1; i++) {
      if (first[i] !== "%") continue;
      const spec = first[i + 1];
      let piece;
      if (spec === "%") piece = "%";
      else if (rest >= args.length) continue;
      else if (spec === "s") {
        const a = args[rest++];
        piece = typeof a === "string" ? a : typeof a === "bigint" ? `${a}n` : inspect(a, 1);
      } else if (spec === "d") {
        const a = args[rest++];
        piece = typeof a === "bigint" ? `${a}n` : typeof a === "symbol" ? "NaN" : formatNumber(Number(a));
      } else if (spec === "i") {
        const a = args[rest++];
        piece = typeof a === "bigint" ? `${a}n` : typeof a === "symbol" ? "NaN" : formatNumber(parseInt(a));
      } else if (spec === "f") {
        const a = args[rest++];
        piece = typeof a === "symbol" ? "NaN" : formatNumber(parseFloat(a));
      } else if (spec === "j") piece = json(args[rest++]);
      else if (spec === "o" || spec === "O") piece = inspect(args[rest++], 0);
      else if (spec === "c") {
        rest++;
        piece = "";
      } else continue;
      out += first.slice(last, i) + piece;
      last = i + 2;
      i++;
    }
    out += first.slice(last);
  } else {
    out = inspect(first, 0);
  }
  for (; rest < args.length; rest++) {
    const a = args[rest];
    out += " " + (typeof a === "string" ? a : inspect(a, 0));
  }
  return out;
}

function json(value) {
  try {
    return JSON.stringify(value);
  } catch (e) {
    return "[Circular]";
  }
}

function formatNumber(n) {
  return Object.is(n, -0) ? "-0" : String(n);
}

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

function inspect(value, depth, seen = []) {
  switch (typeof value) {
    case "string":
      return quote(value);
    case "number":
      return formatNumber(value);
    case "bigint":
      return `${value}n`;
    case "undefined":
      return "undefined";
    case "boolean":
      return String(value);
    case "symbol":
      return value.toString();
    case "function":
      return functionName(value);
  }
  if (value === null) return "null";
  if (seen.includes(value)) return "[Circular *1]";
  if (value instanceof Error) return nodeStack(value);
  if (value instanceof Date) return isNaN(value) ? "Invalid Date" : value.toISOString();
  if (value instanceof RegExp) return String(value);
  if (value instanceof Promise) return "Promise { <pending> }";
  const isArray = Array.isArray(value);
  let prefix = "";
  let entries;
  if (value instanceof Map) {
    prefix = `Map(${value.size}) `;
    if (depth > MAX_DEPTH) return "[Map]";
    entries = [...value].map(([k, v]) => `${inspect(k, depth + 1, [...seen, value])} => ${inspect(v, depth + 1, [...seen, value])}`);
  } else if (value instanceof Set) {
    prefix = `Set(${value.size}) `;
    if (depth > MAX_DEPTH) return "[Set]";
    entries = [...value].map((v) => inspect(v, depth + 1, [...seen, value]));
  } else if (isArray) {
    if (depth > MAX_DEPTH) return "[Array]";
    entries = value.map((v) => inspect(v, depth + 1, [...seen, value]));
  } else {
    const name = value.constructor && value.constructor !== Object ? value.constructor.name : "";
    if (Object.getPrototypeOf(value) === null) prefix = "[Object: null prototype] ";
    else if (name) prefix = `${name} `;
    if (depth > MAX_DEPTH) return name ? `[${name}]` : "[Object]";
    entries = Object.keys(value).map((k) => `${IDENTIFIER.test(k) ? k : quote(k)}: ${inspect(value[k], depth + 1, [...seen, value])}`);
  }
  const [open, close] = isArray ? ["[", "]"] : ["{", "}"];
  if (entries.length === 0) return `${prefix}${open}${close}`;
  // util.inspect's isBelowBreakLength: one line when it fits, else one entry per line.
  const length = entries.reduce((sum, e) => sum + e.length, entries.length) + prefix.length;
  if (length + 2 <= BREAK_LENGTH && !entries.some((e) => e.includes("\n"))) {
    return `${prefix}${open} ${entries.join(", ")} ${close}`;
  }
  const indent = "  ";
  return `${prefix}${open}\n${entries.map((e) => indent + e.split("\n").join("\n" + indent)).join(",\n")}\n${close}`;
}

function quote(s) {
  const escaped = s.replace(/[\\'\n\t\r\b\f\v]/g, (c) => ({ "\\": "\\\\", "'": "\\'", "\n": "\\n", "\t": "\\t", "\r": "\\r", "\b": "\\b", "\f": "\\f", "\v": "\\v" })[c]);
  return `'${escaped}'`;
}

function functionName(f) {
  const source = Function.prototype.toString.call(f);
  if (source.startsWith("class")) return `[class ${f.name || "(anonymous)"}]`;
  const kind = source.startsWith("async") ? "AsyncFunction" : "Function";
  return f.name ? `[${kind}: ${f.name}]` : `[${kind} (anonymous)]`;
}

// ---------------------------------------------------------------------------------------------------------
// Errors as Node shows them: "Name: message" then "    at fn (file:line:col)" per frame, only the action's
// frames (the runner's own say nothing to the action's author). SpiderMonkey's stack is "fn@file:line:col".

function nodeStack(error) {
  let header;
  try {
    header = String(error);
  } catch (e) {
    header = "Error";
  }
  const frames = [];
  const stack = typeof error.stack === "string" ? error.stack : "";
  for (const line of stack.split("\n")) {
    const at = line.lastIndexOf("@");
    if (at < 0) continue;
    let where = line.slice(at + 1);
    if (!where.startsWith(ACTION_FILE + ":")) continue;
    const fn = line.slice(0, at);
    // The wrapper shares the source's first line: columns there are the source's once it is taken off.
    const [, row, column] = where.slice(ACTION_FILE.length).split(":");
    if (row === "1") where = `${ACTION_FILE}:1:${Number(column) - WRAPPER_START.length}`;
    frames.push(fn && fn !== "anonymous" ? `    at ${fn} (${where})` : `    at ${where}`);
  }
  if (frames.length === 0 && error instanceof SyntaxError && error.fileName === ACTION_FILE) {
    frames.push(`    at ${ACTION_FILE}:${error.lineNumber}:${error.columnNumber}`);
  }
  return [header, ...frames].join("\n");
}

function describe(error) {
  return error instanceof Error ? nodeStack(error) : String(error);
}

// serialize-error's shape (what OpenWhisk puts in the result of a rejected promise): an Error becomes its
// name, message, stack and own enumerable properties; anything else stays as it is.
function serializeError(reason) {
  if (!(reason instanceof Error)) return reason;
  const out = {};
  for (const key of Object.keys(reason)) out[key] = reason[key];
  return { ...out, name: reason.name, message: reason.message, stack: nodeStack(reason) };
}

// SpiderMonkey reports an allocation that failed for want of memory as this string exception.
function outOfMemory(error) {
  return error === "out of memory" || (error instanceof Error && error.message === "out of memory");
}

// ---------------------------------------------------------------------------------------------------------
// The action's module scope: the variables a CommonJS module sees in Node, minus what needs Node.

function requireUnsupported(name) {
  const error = new Error(`Cannot find module '${name}': ${UNSUPPORTED}`);
  error.code = "MODULE_NOT_FOUND";
  throw error;
}

// The engine has no wasi:http (build.mjs): without this, fetch would abort the instance.
globalThis.fetch = async function fetch() {
  throw new TypeError(`fetch failed: no network is granted to actions on WebAssembly; ${UNSUPPORTED}`);
};

const WRAPPER_START = "(function (require, module, exports, process) {";

function load(source, main, env) {
  const module = { exports: {} };
  const process = { env: Object.fromEntries(env), argv: [], platform: "wasi", version: "" };
  globalThis.process = process;
  // Like runner.js: the source is the body of a function, `main` is its name there, else the export of
  // that name. The source starts on the first line so that the action's line numbers are its own.
  const wrapper =
    WRAPPER_START +
    source +
    "\n;try { return " +
    main +
    "; } catch (e) { if (e.name === 'ReferenceError') return module.exports." +
    main +
    " || exports." +
    main +
    "; throw e; }\n})" +
    `\n//# sourceURL=${ACTION_FILE}`;
  const factory = (0, eval)(wrapper);
  return factory(requireUnsupported, module, module.exports, process);
}

function answer(status, body) {
  return [status, JSON.stringify(body)];
}

function initFailed(error) {
  console.error("Error during initialization:", error instanceof Error ? nodeStack(error) : error);
  return answer(FAILED, { error: `Initialization has failed due to: ${describe(error)}` });
}

export function prepare(source, main) {
  try {
    const handler = load(source, main, []);
    if (typeof handler !== "function") return initFailed(`Function entrypoint '${main}' is not a function.`);
    return [OK, '{"ok":true}'];
  } catch (error) {
    if (outOfMemory(error)) return [MEMORY_EXHAUSTED, ""];
    try {
      return initFailed(error);
    } catch (e) {
      return answer(FAILED, { error: "Initialization has failed due to: an error that cannot be shown" });
    }
  }
}

export async function run(source, main, params, env) {
  try {
    const handler = load(source, main, env);
    let result;
    try {
      result = handler(JSON.parse(params));
    } catch (error) {
      if (outOfMemory(error)) return [MEMORY_EXHAUSTED, ""];
      console.error(error);
      return answer(FAILED, { error: `An error has occurred: ${String(error)}` });
    }
    try {
      result = await result;
    } catch (reason) {
      if (outOfMemory(reason)) return [MEMORY_EXHAUSTED, ""];
      return answer(OK, { error: reason ? serializeError(reason) : {} });
    }
    if (result === undefined) result = {};
    if (typeof result !== "object") {
      console.error(`Result must be of type object but has type "${typeof result}":`, result);
      return answer(FAILED, { error: NOT_A_DICTIONARY });
    }
    return [OK, JSON.stringify(result)];
  } catch (error) {
    // The source failed this time although /init passed (it differs per run only through the environment),
    // or the result cannot be JSON (a cycle, a BigInt).
    if (outOfMemory(error)) return [MEMORY_EXHAUSTED, ""];
    try {
      console.error(error);
      return answer(FAILED, { error: `An error has occurred: ${String(error)}` });
    } catch (e) {
      return answer(FAILED, { error: "An error has occurred: an error that cannot be shown" });
    }
  }
}
