// The action proxy's two endpoints, /init and /run (reference/openwhisk.md §4), with the answers and
// texts of OpenWhisk's Node.js runtime (core/nodejsActionBase/src/service.js):
//   /init  200 {"OK": true}; 403 "Missing main/no code to execute."; 403 "Cannot initialize the action
//          more than once."; 502 "Initialization has failed due to: <stack or reason>" (after writing
//          the error and the sentinels to the logs; the container is then stopped).
//   /run   200 <result>; 502 "The action did not return a dictionary." (a result that is not an object);
//          502 "An error has occurred: <error>" when main throws (the container is then stopped);
//          403 "System not initialized." / "System not ready, status is <status>.".
// After each run, and after a failed init, the sentinel line goes to stdout and to stderr.
// With __OW_ALLOW_CONCURRENT=true the status stays "ready" during a run, so runs overlap (OpenWhisk's
// action concurrency); the per-run __OW_* variables then belong to the latest run, as in OpenWhisk.
"use strict";

const { initializeActionHandler, NodeActionRunner } = require("./runner");

const SENTINEL = "XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX";
const Status = { ready: "ready", starting: "starting", running: "running", stopped: "stopped" };

/** The proxy's state: one action, initialized once. Each method resolves to {code, response}. */
class NodeActionService {
  constructor(config) {
    this.ignoreRunStatus = String(config.allowConcurrent || "").toLowerCase() === "true";
    this.status = Status.ready;
    this.userCodeRunner = undefined;
  }

  setStatus(status) {
    if (this.status !== Status.stopped) this.status = status;
  }

  /** POST /init with {"value": {"main", "code", "binary", "env"}}. */
  async initCode(body) {
    if (this.status === Status.ready && this.userCodeRunner === undefined) {
      this.setStatus(Status.starting);
      const message = (body && body.value) || {};
      if (!(message.main && message.code && typeof message.main === "string" && typeof message.code === "string")) {
        this.setStatus(Status.ready);
        return errorMessage(403, "Missing main/no code to execute.");
      }
      try {
        await this.doInit(message);
        this.setStatus(Status.ready);
        return { code: 200, response: { OK: true } };
      } catch (error) {
        this.setStatus(Status.stopped);
        return errorMessage(502, `Initialization has failed due to: ${error && error.stack ? String(error.stack) : error}`);
      }
    }
    const msg = this.userCodeRunner !== undefined ? "Cannot initialize the action more than once." : `System not ready, status is ${this.status}.`;
    console.error("Internal system error:", msg);
    return errorMessage(403, msg);
  }

  /** POST /run with {"value": params, "namespace", "action_name", "activation_id", "deadline", ...}. */
  async runCode(body) {
    if (!(this.status === Status.ready && this.userCodeRunner !== undefined)) {
      const msg = this.userCodeRunner ? `System not ready, status is ${this.status}.` : "System not initialized.";
      console.error("Internal system error:", msg);
      return errorMessage(403, msg);
    }
    if (!this.ignoreRunStatus) this.setStatus(Status.running);
    const msg = body || {};
    if (msg.value === null || msg.value === undefined) {
      msg.value = {};
    } else if (typeof msg.value !== "object") {
      const errStr = `Internal system error: the argument must be a dictionary but has type '${typeof msg.value}'.`;
      console.error("Internal system error:", errStr);
      return errorMessage(403, errStr);
    }
    try {
      const result = await this.doRun(msg);
      if (!this.ignoreRunStatus) this.setStatus(Status.ready);
      // typeof null is "object": a null result passes, as in OpenWhisk (the invoker then judges it).
      if (typeof result !== "object") return errorMessage(502, "The action did not return a dictionary.");
      return { code: 200, response: result };
    } catch (error) {
      this.setStatus(Status.stopped);
      return errorMessage(502, `An error has occurred: ${error}`);
    }
  }

  async doInit(message) {
    // The action's init parameters and the __OW_* of the first activation (reference §4.1): values that
    // are not strings are stored as their JSON text, as in OpenWhisk.
    if (message.env && typeof message.env === "object") {
      for (const [key, value] of Object.entries(message.env)) {
        process.env[key] = typeof value !== "object" || value === null ? (value ? String(value) : "") : JSON.stringify(value);
      }
    }
    try {
      this.userCodeRunner = new NodeActionRunner(await initializeActionHandler(message));
    } catch (error) {
      // The error reaches the activation's logs; the sentinels end them, as this ends the activation.
      console.error("Error during initialization:", error);
      writeMarkers();
      throw error;
    }
  }

  async doRun(msg) {
    // Every per-activation string beside `value` becomes __OW_<KEY> for this run (reference §4.2).
    for (const [key, value] of Object.entries(msg)) {
      if (typeof value === "string" && key !== "value") process.env[`__OW_${key.toUpperCase()}`] = value;
    }
    try {
      const result = await this.userCodeRunner.run(msg.value);
      if (typeof result !== "object") {
        console.error(`Result must be of type object but has type "${typeof result}":`, result);
      }
      writeMarkers();
      return result;
    } catch (error) {
      console.error(error);
      writeMarkers();
      throw error;
    }
  }
}

function errorMessage(code, error) {
  return { code: code, response: { error: error } };
}

function writeMarkers() {
  console.log(SENTINEL);
  console.error(SENTINEL);
}

module.exports = { NodeActionService, SENTINEL };
