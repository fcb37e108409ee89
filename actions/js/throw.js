// throw: main throws an Error -- OpenWhisk's nodejs runtime answers /run with 500
// {"error": "An error has occurred: Error: something went wrong"} (a developer error).
function main(args) {
  console.log("throw: about to throw");
  throw new Error("something went wrong");
}
