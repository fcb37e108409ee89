// The action inside pywhisk's Node.js runtime: loading it (/init) and calling it (/run).
//
// Follows OpenWhisk's Node.js runtime (apache/openwhisk-runtime-nodejs core/nodejsActionBase/runner.js):
// - plain source is evaluated as a function body that returns the function named by `main`; a source
//   with no such top-level name may set `module.exports.<main>` or `exports.<main>` instead; if neither
//   gives a function, the source is loaded again as an ES module (`export function main`) from a file,
//   as ES modules can only be imported from one;
// - a zip (base64, `binary`) is unpacked with `unzip` and its module imported: `package.json`'s `main`,
//   else `index.js`, else `index.mjs`; a `main` of the form `file.fn` takes `fn` from `file.[m]js`;
// - a run calls main(params, context); a returned promise is awaited, `undefined` becomes `{}`, and a
//   rejection becomes the result {"error": <the reason, serialized>} (an application error), while a
//   throw fails the run (service.js answers 502 "An error has occurred: ...").
// No npm dependencies: serializeError stands in for the `serialize-error` package OpenWhisk uses.
"use strict";

const childProcess = require("child_process");
const fs = require("fs");
const { createRequire } = require("module");
const os = require("os");
const path = require("path");
const { pathToFileURL } = require("url");

/** Loads the action of an /init message; resolves to its main function, rejects with the reason. */
async function initializeActionHandler(message) {
  if (message.binary) {
    return assertMainIsFunction(await loadZip(message), message.main);
  }
  let handler;
  try {
    handler = assertMainIsFunction(evaluateSource(message.code, message.main), message.main);
  } catch (_) {
    // As OpenWhisk: anything that did not give a function (a syntax error included) is tried as an ES
    // module, whose own error is then the one reported.
    handler = await importSource(message.code, message.main);
  }
  return assertMainIsFunction(handler, message.main);
}

/** The loaded action: runs it with the params and the OpenWhisk context of the current activation. */
class NodeActionRunner {
  constructor(handler) {
    this.userScriptMain = handler;
  }

  /** Resolves to the result; rejects only when main throws (a rejected promise is a result). */
  run(args) {
    const deadline = Number(process.env.__OW_DEADLINE);
    const context = {
      functionName: process.env.__OW_ACTION_NAME,
      functionVersion: process.env.__OW_ACTION_VERSION,
      activationId: process.env.__OW_ACTIVATION_ID,
      requestId: process.env.__OW_TRANSACTION_ID,
      deadline: deadline,
      apiHost: process.env.__OW_API_HOST,
      apiKey: process.env.__OW_API_KEY || "",
      namespace: process.env.__OW_NAMESPACE,
      getRemainingTimeInMillis: () => deadline - Date.now(),
    };
    let result;
    try {
      result = this.userScriptMain(args, context);
    } catch (error) {
      return Promise.reject(error);
    }
    return Promise.resolve(result).then(
      (resolved) => (resolved === undefined ? {} : resolved), // e.g. a bare `return;`
      (error) => ({ error: error ? serializeError(error) : {} }), // `reject()` with no reason: {}
    );
  }
}

// The source as a function body with CommonJS's free names, returning the function named by `main`.
// `require` resolves from the working directory, as an action's require of its own files would.
function evaluateSource(code, main) {
  const module = { exports: {} };
  const localRequire = createRequire(path.join(process.cwd(), "action.js"));
  const body = `${code}
;try { return ${main}; } catch (e) {
  if (e.name === "ReferenceError") return module.exports.${main} || exports.${main};
  throw e;
}`;
  // eslint-disable-next-line no-new-func -- evaluating the action's source is this module's job
  return new Function("module", "exports", "require", body)(module, module.exports, localRequire);
}

// ES modules can only be imported from a file: write the source as index.mjs in a fresh directory.
async function importSource(code, main) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "action-"));
  const file = path.join(dir, "index.mjs");
  fs.writeFileSync(file, code);
  const module = await import(pathToFileURL(file).href);
  return module[main];
}

async function loadZip(message) {
  const parts = splitMainHandler(message.main);
  if (parts === undefined) throw "Name of main function is not valid.";
  const [index, main] = parts;
  const moduleDir = unzipInTmpDir(message.code);
  process.chdir(moduleDir);
  const has = (name) => fs.existsSync(path.join(moduleDir, name));
  if (index === undefined && !has("package.json") && !has("index.js") && !has("index.mjs")) {
    throw "Zipped functions must contain either package.json or index.[m]js at the root.";
  }
  let mainFile;
  if (index !== undefined) {
    // `file.a.b` takes the function a.b from file.js or file.mjs.
    if (has(`${index}.js`)) mainFile = `${index}.js`;
    else if (has(`${index}.mjs`)) mainFile = `${index}.mjs`;
  }
  if (!mainFile && has("package.json")) {
    mainFile = JSON.parse(fs.readFileSync(path.join(moduleDir, "package.json"), "utf8")).main;
  }
  if (!mainFile && has("index.mjs")) mainFile = "index.mjs";
  if (!mainFile) mainFile = "index.js";
  const module = await import(pathToFileURL(path.resolve(moduleDir, mainFile)).href);
  return main.split(".").reduce((value, key) => (value == null ? undefined : value[key]), module);
}

// The zip goes to one fresh directory under /tmp (the container's only writable, size-limited path)
// and is unpacked into another, as OpenWhisk's runtime does; a bad archive is the action's fault.
function unzipInTmpDir(base64) {
  const archiveDir = fs.mkdtempSync(path.join(os.tmpdir(), "zip-"));
  const zipFile = path.join(archiveDir, "action.zip");
  try {
    fs.writeFileSync(zipFile, Buffer.from(base64, "base64"));
  } catch (_) {
    throw "There was an error reading the function archive.";
  }
  const moduleDir = fs.mkdtempSync(path.join(os.tmpdir(), "action-"));
  const unzip = childProcess.spawnSync("unzip", ["-qq", zipFile, "-d", moduleDir], { encoding: "utf8" });
  fs.rmSync(archiveDir, { recursive: true, force: true });
  if (unzip.status !== 0) throw "There was an error uncompressing the function archive.";
  return moduleDir;
}

// "main" -> [undefined, "main"]; "file.a.b" -> ["file", "a.b"]; anything else is not a valid name.
function splitMainHandler(handler) {
  const matches = handler.match(/^([^.]+)$|^([^.]+)\.(.+)$/);
  if (!matches) return undefined;
  return [matches[2], matches[3] || matches[1]];
}

function assertMainIsFunction(handler, name) {
  if (typeof handler !== "function") throw `Function entrypoint '${name}' is not a function.`;
  return handler;
}

// What the `serialize-error` package makes of a rejection reason: an Error becomes a plain object with
// its name, message, stack and own enumerable properties (circular references as "[Circular]"); an
// object is copied the same way; anything else (a string, a number) stays as it is.
function serializeError(value, seen = []) {
  if (typeof value === "function") return `[Function: ${value.name || "anonymous"}]`;
  if (value === null || typeof value !== "object") return value;
  if (seen.includes(value)) return "[Circular]";
  seen = seen.concat([value]);
  if (Array.isArray(value)) return value.map((item) => serializeError(item, seen));
  const out = {};
  for (const [key, item] of Object.entries(value)) {
    if (typeof item !== "function") out[key] = serializeError(item, seen);
  }
  if (value instanceof Error) {
    for (const key of ["name", "message", "stack"]) {
      if (typeof value[key] === "string") out[key] = value[key];
    }
  }
  return out;
}

module.exports = { initializeActionHandler, NodeActionRunner, serializeError };
