// What the model.js and events.js scenarios share: argument parsing and one JSON line per step on stdout
// ({"step", "ok", ...}); a failed step prints its line and throws StepFailed, which ends the scenario (exit 1).
'use strict'

class StepFailed extends Error {}

// --name value / --name=value into {name: value}; exits 2 with `usage` when an argument is odd or a required
// one is missing.
function parseArgs (argv, required, usage) {
  const args = {}
  const bad = why => {
    process.stderr.write(`${why}\nusage: ${usage}\n`)
    process.exit(2)
  }
  for (let i = 0; i < argv.length; i++) {
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(argv[i])
    if (!m) bad(`unexpected argument ${argv[i]}`)
    args[m[1]] = m[2] !== undefined ? m[2] : argv[++i]
  }
  for (const name of required) {
    if (!args[name]) bad(`--${name} is required`)
  }
  return args
}

const emit = obj => process.stdout.write(JSON.stringify(obj) + '\n')
const pass = (step, fields) => emit(Object.assign({ step, ok: true }, fields || {}))

function fail (step, message, err) {
  const line = { step, ok: false, error: message }
  if (err) {
    line.client_error = String(err.message || err)
    if (err.statusCode !== undefined) line.status = err.statusCode
    if (err.error !== undefined) line.body = err.error
  }
  emit(line)
  throw new StepFailed(message)
}

function check (step, cond, message, extra) {
  if (!cond) fail(step, typeof message === 'function' ? message() : message, extra)
}

// Runs fn(); any exception that is not a reported failure becomes one.
async function run (step, fn) {
  try {
    return await fn()
  } catch (err) {
    if (err instanceof StepFailed) throw err
    fail(step, 'unexpected error', err)
  }
}

// Expects fn() to reject with the client's error for an HTTP `status`.
async function expectError (step, status, fn) {
  let err
  try {
    const value = await fn()
    fail(step, `expected HTTP ${status}, got success: ${JSON.stringify(value)}`)
  } catch (e) {
    if (e instanceof StepFailed) throw e
    err = e
  }
  check(step, err.statusCode === status, `expected statusCode ${status}`, err)
  pass(step, { status: err.statusCode, error_message: err.error && err.error.error })
}

// Ends the scenario: a crash that is not a reported step failure is reported as the step "crash".
function finish (promise) {
  promise.catch(err => {
    if (!(err instanceof StepFailed)) emit({ step: 'crash', ok: false, error: String(err && err.stack) })
    process.exit(1)
  })
}

module.exports = { StepFailed, parseArgs, emit, pass, fail, check, run, expectError, finish }
