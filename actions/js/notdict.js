// notdict: main returns a string -- OpenWhisk's nodejs runtime answers /run with 502
// {"error": "The action did not return a dictionary."}.
function main(args) {
  return "this is not a dictionary";
}
