// syntaxerror: does not parse -- /init fails with 502 "Initialization has failed due to: SyntaxError: ..."
function main(args) {
  return { ok: true
}
