#!/usr/bin/env node
// Drives a pywhisk (or any OpenWhisk) API host with the official JavaScript client, the
// `openwhisk` npm package, exactly as an application would: create/update/get/list/invoke/
// delete an action, list/get activations and their logs and results, and the 401/404/409
// errors. Prints one JSON line per step on stdout; exits 1 at the first unexpected outcome,
// 2 on bad usage.
//
//   node scenario.js --apihost http://127.0.0.1:3233 --auth UUID:KEY --wasm hello.wasm \
//        [--apperror-wasm apperror.wasm] [--name NAME]
//
// Steps marked "optional" probe APIs beyond actions and activations (packages, triggers,
// rules): they are reported but never fail the run.
'use strict'

const fs = require('fs')
const crypto = require('crypto')
const openwhisk = require('openwhisk')

function parseArgs (argv) {
  const args = {}
  for (let i = 0; i < argv.length; i++) {
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(argv[i])
    if (!m) usage(`unexpected argument ${argv[i]}`)
    args[m[1]] = m[2] !== undefined ? m[2] : argv[++i]
  }
  for (const required of ['apihost', 'auth', 'wasm']) {
    if (!args[required]) usage(`--${required} is required`)
  }
  return args
}

function usage (why) {
  process.stderr.write(`${why}\nusage: node scenario.js --apihost http://HOST:PORT --auth UUID:KEY --wasm hello.wasm [--apperror-wasm apperror.wasm] [--name NAME]\n`)
  process.exit(2)
}

function emit (obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

class StepFailed extends Error {}

function pass (step, fields) {
  emit(Object.assign({ step, ok: true }, fields || {}))
}

function fail (step, message, err) {
  const line = { step, ok: false, error: message }
  if (err) {
    line.client_error = String(err.message || err)
    line.client_error_type = err.name || typeof err
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

// Expects fn() to reject with the client's OpenWhiskError for an HTTP `status` whose body
// is an OpenWhisk error ({"error": "...", "code": ...}).
async function expectError (step, status, fn) {
  let err
  try {
    const value = await fn()
    fail(step, `expected HTTP ${status}, got success: ${JSON.stringify(value)}`)
  } catch (e) {
    if (e instanceof StepFailed) throw e
    err = e
  }
  check(step, err.name === 'OpenWhiskError', `expected an OpenWhiskError, got ${err.name}`, err)
  check(step, err.statusCode === status, `expected statusCode ${status}`, err)
  check(step, err.error && typeof err.error.error === 'string' && err.error.code !== undefined,
    'error body is not {"error": ..., "code": ...}', err)
  const fields = { status: err.statusCode, error_message: err.error.error, error_code: err.error.code, message: err.message }
  pass(step, fields)
  return err
}

function greeting (step, result) {
  check(step, result && result.greeting === 'Hello, Ada!' && Object.keys(result).length === 1,
    () => `result ${JSON.stringify(result)}, want {"greeting":"Hello, Ada!"}`)
}

function annotation (activation, key) {
  const found = (activation.annotations || []).find(a => a.key === key)
  return found ? found.value : undefined
}

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

async function main () {
  const args = parseArgs(process.argv.slice(2))
  const name = args.name || `owclient-js-${crypto.randomBytes(3).toString('hex')}`
  const code = fs.readFileSync(args.wasm)
  const options = { apihost: args.apihost, api_key: args.auth, namespace: '_', ignore_certs: true }
  const ow = openwhisk(options)
  pass('client', { api: ow.actions.client.options.api, action: name })

  const namespaces = await run('namespaces', () => ow.namespaces.list())
  check('namespaces', Array.isArray(namespaces) && namespaces.length > 0, `namespaces ${JSON.stringify(namespaces)}`)
  pass('namespaces', { namespaces })

  const [uuid] = args.auth.split(':')
  const bad = openwhisk(Object.assign({}, options, { api_key: `${uuid}:not-the-key` }))
  await expectError('bad-auth', 401, () => bad.actions.list())

  // actions.create: a Buffer is sent base64-encoded as exec.code.
  const created = await run('create', () => ow.actions.create({
    name,
    action: code,
    kind: 'wasm:wasi',
    annotations: { description: 'pywhisk client test' },
    params: { name: 'stranger' },
    limits: { timeout: 30000 }
  }))
  check('create', created.name === name && created.exec && created.exec.kind === 'wasm:wasi',
    () => `created ${JSON.stringify(created).slice(0, 300)}`)
  check('create', created.version === '0.0.1', `version ${created.version}`)
  pass('create', { name: created.name, namespace: created.namespace, version: created.version, kind: created.exec.kind })

  await expectError('create-conflict', 409, () => ow.actions.create({ name, action: code, kind: 'wasm:wasi' }))

  const updated = await run('update', () => ow.actions.update({
    name,
    action: code,
    kind: 'wasm:wasi',
    annotations: { description: 'pywhisk client test' },
    params: { name: 'stranger' },
    limits: { timeout: 30000 }
  }))
  check('update', updated.version && updated.version !== created.version,
    `version ${updated.version} after update, was ${created.version}`)
  pass('update', { version: updated.version, previous_version: created.version })

  const got = await run('get', () => ow.actions.get({ name, code: false }))
  check('get', got.name === name && got.version === updated.version && got.exec.kind === 'wasm:wasi',
    () => `got ${JSON.stringify(got).slice(0, 300)}`)
  check('get', !got.exec.code, 'code=false but the code came back')
  check('get', annotation(got, 'description') === 'pywhisk client test',
    () => `annotations ${JSON.stringify(got.annotations)}`)
  check('get', (got.parameters || []).some(p => p.key === 'name' && p.value === 'stranger'),
    () => `parameters ${JSON.stringify(got.parameters)}`)
  check('get', got.limits && got.limits.timeout === 30000, () => `limits ${JSON.stringify(got.limits)}`)
  pass('get', { version: got.version, limits: got.limits, annotations: got.annotations.map(a => a.key) })

  const withCode = await run('get-code', () => ow.actions.get({ name }))
  check('get-code', withCode.exec.code === code.toString('base64'), 'code differs from what was created')
  pass('get-code', { binary: withCode.exec.binary })

  const actions = await run('list', () => ow.actions.list({ limit: 30, skip: 0 }))
  check('list', Array.isArray(actions) && actions.some(a => a.name === name),
    () => `${name} not in ${JSON.stringify(actions.map(a => a.name))}`)
  pass('list', { count: actions.length })

  const counted = await run('list-count', () => ow.actions.list({ count: true }))
  check('list-count', counted && typeof counted.actions === 'number' && counted.actions >= 1,
    () => `count answer ${JSON.stringify(counted)}`)
  pass('list-count', counted)

  const params = { name: 'Ada' }

  // blocking + result: the client asks for the whole activation and returns response.result.
  const result = await run('invoke-result', () => ow.actions.invoke({ name, params, blocking: true, result: true }))
  greeting('invoke-result', result)
  pass('invoke-result', { result })

  // A parameter bound at create time is used when the invoke does not pass it.
  const defaulted = await run('invoke-default-param', () => ow.actions.invoke({ name, blocking: true, result: true }))
  check('invoke-default-param', defaulted && defaulted.greeting === 'Hello, stranger!',
    () => `result ${JSON.stringify(defaulted)}`)
  pass('invoke-default-param', { result: defaulted })

  const activation = await run('invoke-blocking', () => ow.actions.invoke({ name, params, blocking: true }))
  check('invoke-blocking', typeof activation.activationId === 'string' && activation.name === name,
    () => `activation ${JSON.stringify(activation).slice(0, 300)}`)
  check('invoke-blocking', activation.response && activation.response.success === true &&
    activation.response.status === 'success', () => `response ${JSON.stringify(activation.response)}`)
  greeting('invoke-blocking', activation.response.result)
  check('invoke-blocking', typeof annotation(activation, 'waitTime') === 'number',
    () => `annotations ${JSON.stringify(activation.annotations)}`)
  const id = activation.activationId
  pass('invoke-blocking', { activation_id: id, annotations: activation.annotations.map(a => a.key), logs: activation.logs })

  const fetched = await run('activation-get', () => ow.activations.get({ name: id }))
  check('activation-get', fetched.activationId === id && fetched.name === name && fetched.response.success,
    () => `activation ${JSON.stringify(fetched).slice(0, 300)}`)
  greeting('activation-get', fetched.response.result)
  pass('activation-get', { activation_id: id, duration: fetched.duration })

  const listed = await run('activation-list', () => ow.activations.list({ name, limit: 5, docs: true }))
  check('activation-list', Array.isArray(listed) && listed.some(a => a.activationId === id),
    () => `${id} not in ${JSON.stringify((listed || []).map(a => a.activationId))}`)
  check('activation-list', listed.every(a => a.name === name), 'filtered by name but other actions came back')
  const doc = listed.find(a => a.activationId === id)
  check('activation-list', doc.response && doc.response.result, 'docs=true but no response result')
  pass('activation-list', { ids: listed.map(a => a.activationId) })

  const actCount = await run('activation-list-count', () => ow.activations.list({ name, count: true }))
  check('activation-list-count', actCount && typeof actCount.activations === 'number' && actCount.activations >= 3,
    () => `count answer ${JSON.stringify(actCount)}`)
  pass('activation-list-count', actCount)

  const logs = await run('activation-logs', () => ow.activations.logs({ name: id }))
  check('activation-logs', Array.isArray(logs.logs) && logs.logs.some(l => l.includes('hello: greeting Ada')),
    () => `logs ${JSON.stringify(logs)}`)
  pass('activation-logs', { logs: logs.logs })

  const res = await run('activation-result', () => ow.activations.result({ name: id }))
  check('activation-result', res.success === true && res.status === 'success', () => `result ${JSON.stringify(res)}`)
  greeting('activation-result', res.result)
  pass('activation-result', { result: res.result })

  const queued = await run('invoke-nonblocking', () => ow.actions.invoke({ name, params }))
  check('invoke-nonblocking', queued && typeof queued.activationId === 'string' && queued.activationId !== id,
    () => `answer ${JSON.stringify(queued)}`)
  pass('invoke-nonblocking', { activation_id: queued.activationId })

  const deadline = Date.now() + 60000
  let polls = 0
  for (;;) {
    polls++
    try {
      const done = await ow.activations.get(queued.activationId)
      check('activation-poll', done.activationId === queued.activationId && done.response.success, 'bad activation')
      greeting('activation-poll', done.response.result)
      pass('activation-poll', { activation_id: done.activationId, polls })
      break
    } catch (err) {
      if (err instanceof StepFailed) throw err
      if (err.statusCode !== 404 || Date.now() > deadline) fail('activation-poll', 'activation did not appear', err)
      await sleep(200)
    }
  }

  await expectError('invoke-missing', 404, () => ow.actions.invoke({ name: `missing-${name}`, params, blocking: true, result: true }))
  await expectError('get-missing', 404, () => ow.actions.get(`missing-${name}`))
  await expectError('activation-missing', 404, () => ow.activations.get('00000000000000000000000000000000'))

  if (args['apperror-wasm']) await appError(ow, `${name}-apperr`, fs.readFileSync(args['apperror-wasm']), params)

  // Optional: `namespaces.get` lists actions, packages, triggers and rules.
  try {
    const all = await ow.namespaces.get()
    pass('namespaces-get', { optional: true, actions: all.actions.length })
  } catch (err) {
    emit({ step: 'namespaces-get', ok: false, optional: true, status: err.statusCode, error: err.message })
  }

  const deleted = await run('delete', () => ow.actions.delete({ name }))
  check('delete', deleted && deleted.name === name, () => `delete answer ${JSON.stringify(deleted)}`)
  pass('delete', {})

  await expectError('get-deleted', 404, () => ow.actions.get(name))
  await expectError('delete-again', 404, () => ow.actions.delete(name))

  pass('done', { action: name })
}

// An action whose result is {"error": ...}: a blocking invoke answers 502 and the client
// rejects with statusCode 502 and the action's error as its message.
async function appError (ow, name, code, params) {
  await run('apperror-create', () => ow.actions.create({ name, action: code, kind: 'wasm:wasi', overwrite: true }))
  pass('apperror-create', { name })

  const err = await (async () => {
    try {
      const value = await ow.actions.invoke({ name, params, blocking: true, result: true })
      fail('apperror-invoke-result', `expected a rejection, got ${JSON.stringify(value)}`)
    } catch (e) {
      if (e instanceof StepFailed) throw e
      return e
    }
  })()
  check('apperror-invoke-result', err.statusCode === 502, `statusCode ${err.statusCode}, want 502`, err)
  check('apperror-invoke-result', err.message.includes('something went wrong'), 'message lacks the action error', err)
  const act = err.error
  check('apperror-invoke-result', act && act.activationId && act.response && act.response.success === false &&
    act.response.status === 'application error', () => `error body ${JSON.stringify(act)}`)
  pass('apperror-invoke-result', { status: err.statusCode, message: err.message, activation_id: act.activationId })

  await run('apperror-delete', () => ow.actions.delete(name))
  pass('apperror-delete', {})
}

main().catch(err => {
  if (!(err instanceof StepFailed)) emit({ step: 'crash', ok: false, error: String(err && err.stack) })
  process.exit(1)
})
