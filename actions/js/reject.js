// reject: main returns a rejected promise -- OpenWhisk's nodejs runtime turns the rejection into the
// result {"error": <the serialized reason>} (an application error), e.g. {"error": {"message": ...}}.
function main(args) {
  console.log("reject: about to reject");
  return Promise.reject(new Error("promise rejected"));
}
