// hello: {"name": "Ada"} -> {"greeting": "Hello, Ada!"} (name defaults to "stranger") -- the
// nodejs twin of actions/src/hello.c: the same two log lines (one on stdout, one on stderr).
// Plain JavaScript, no Node built-ins: the same file runs on Docker (nodejs:18) and on WASM.

function main(args) {
  // Like hello.c: a string is used as is, any other JSON value as its JSON text ({"name": 42} -> "42").
  let name = "stranger";
  if (args && Object.prototype.hasOwnProperty.call(args, "name")) {
    name = typeof args.name === "string" ? args.name : JSON.stringify(args.name);
  }
  console.log(`hello: greeting ${name}`);
  console.error("hello: this line goes to stderr");
  return { greeting: `Hello, ${name}!` };
}
