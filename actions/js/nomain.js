// nomain: parses, but defines no function called main -- /init fails with 502
// "Initialization has failed due to: ReferenceError: main is not defined" (OpenWhisk's nodejs runtime).
function notMain(args) {
  return { ok: true };
}
