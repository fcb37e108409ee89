// pywhisk's Node.js action proxy: the OpenWhisk runtime protocol on port 8080 (reference/openwhisk.md
// §4), with Node's own http module (no npm dependencies, so the image is Debian's nodejs and these three
// files). OpenWhisk's runtime (core/nodejsActionBase/app.js) is an express app with the same routes:
// POST /init and POST /run; any other route, and a body that is not JSON, get 500 {"error": "Bad request."}.
//
// The port is argv[2], else __OW_PROXY_PORT, else 8080. Nothing but the action's own output, the
// proxy's error lines and the sentinels is written to stdout and stderr: the invoker reads those as
// the activation's logs.
"use strict";

const http = require("http");
const { NodeActionService } = require("./service");

const MAX_BODY_BYTES = 48 * 1024 * 1024; // OpenWhisk's bodyParser.json({limit: "48mb"})

const service = new NodeActionService({ allowConcurrent: process.env.__OW_ALLOW_CONCURRENT });
const routes = { "/init": (body) => service.initCode(body), "/run": (body) => service.runCode(body) };

const server = http.createServer((req, res) => {
  const route = req.method === "POST" ? routes[req.url] : undefined;
  const chunks = [];
  let size = 0;
  req.on("data", (chunk) => {
    size += chunk.length;
    if (size <= MAX_BODY_BYTES) chunks.push(chunk);
  });
  req.on("end", () => {
    let body;
    try {
      if (route === undefined || size > MAX_BODY_BYTES) throw new Error("bad request");
      body = JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}");
    } catch (_) {
      return send(res, 500, { error: "Bad request." });
    }
    route(body).then(
      (answer) => send(res, answer.code, answer.response),
      (error) => {
        console.error("[wrapEndpoint]", "exception caught", error && error.message);
        send(res, 500, { error: "Internal error (exception)." });
      },
    );
  });
});

function send(res, code, response) {
  let text;
  try {
    text = JSON.stringify(response);
  } catch (error) {
    // A result that JSON cannot hold (a cycle, a BigInt) is the action's fault, told as OpenWhisk's
    // express would fail it: not a 200.
    code = 502;
    text = JSON.stringify({ error: `An error has occurred: ${error}` });
  }
  // `undefined` (JSON.stringify of a function result) cannot be sent as JSON: null is what express sends.
  const payload = Buffer.from(text === undefined ? "null" : text, "utf8");
  res.writeHead(code, { "Content-Type": "application/json", "Content-Length": payload.length });
  res.end(payload);
}

// The invoker keeps one connection per container for as long as it lives, and an action may run for
// minutes: no idle, request or socket timeouts on our side (OpenWhisk's service.js: server.timeout = 0).
server.keepAliveTimeout = 0;
server.requestTimeout = 0;
server.timeout = 0;
// __OW_PROXY_SOCKET: a Unix socket instead, for a container without a network (executor_docker/oci.py).
server.listen(process.env.__OW_PROXY_SOCKET || Number(process.argv[2] || process.env.__OW_PROXY_PORT || 8080));
