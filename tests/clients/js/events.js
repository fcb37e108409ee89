#!/usr/bin/env node
// Drives OpenWhisk's event model with the official JavaScript client (the `openwhisk` npm package), as an
// application would: a trigger with two rules (one to a WASM action, one to a Python action on Docker), rule
// enable/disable and status, a fire and the trigger activation's logs (one JSON line per rule), the actions'
// records caused by it, and `feeds.create`/`get`/`delete` of /whisk.system/alarms/interval.
// Prints one JSON line per step; exits 1 at the first unexpected outcome, 2 on bad usage.
//
//   node events.js --apihost http://HOST:PORT --auth UUID:KEY --echo-wasm echo.wasm [--python-kind KIND] [--name NAME]
'use strict'

const fs = require('fs')
const crypto = require('crypto')
const openwhisk = require('openwhisk')

const { check, expectError, fail, finish, parseArgs, pass, run } = require('./steps')

const REQUIRED = ['apihost', 'auth', 'echo-wasm']
const USAGE = 'node events.js --apihost URL --auth UUID:KEY --echo-wasm echo.wasm [--python-kind KIND] [--name NAME]'
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

// The record of an activation, polled until it exists (non-blocking activations are recorded when they end).
async function record (ow, step, id) {
  const deadline = Date.now() + 60000
  for (;;) {
    try {
      return await ow.activations.get({ name: id })
    } catch (err) {
      if (err.statusCode !== 404 || Date.now() > deadline) fail(step, `no record of ${id}`, err)
      await sleep(100)
    }
  }
}

async function main () {
  const args = parseArgs(process.argv.slice(2), REQUIRED, USAGE)
  const name = args.name || `owevents-js-${crypto.randomBytes(3).toString('hex')}`
  const pythonKind = args['python-kind'] || 'python:3.11'
  const ow = openwhisk({ apihost: args.apihost, api_key: args.auth, namespace: '_', ignore_certs: true })
  const [namespace] = await run('namespaces', () => ow.namespaces.list())
  pass('namespaces', { namespace })

  const trigger = `${name}-t`
  const [wasm, py] = [`${name}-wasm`, `${name}-py`]
  await run('actions', async () => {
    await ow.actions.create({ name: wasm, action: fs.readFileSync(args['echo-wasm']), kind: 'wasm:wasi' })
    await ow.actions.create({ name: py, kind: pythonKind, action: "def main(args):\n    return {'python': args.get('x'), 'from': args.get('from')}\n" })
  })
  pass('actions', {})

  const created = await run('trigger-create', () => ow.triggers.create({
    name: trigger, trigger: { parameters: [{ key: 'from', value: 'trigger' }] }
  }))
  check('trigger-create', created.name === trigger, () => JSON.stringify(created))
  pass('trigger-create', { version: created.version })

  await run('rule-create', async () => {
    await ow.rules.create({ name: `${name}-r1`, trigger, action: wasm })
    await ow.rules.create({ name: `${name}-r2`, trigger, action: py })
  })
  const r1 = await run('rule-get', () => ow.rules.get({ name: `${name}-r1` }))
  check('rule-get', r1.status === 'active' && r1.trigger.name === trigger && r1.action.name === wasm, () => JSON.stringify(r1))
  pass('rule-create', {})
  pass('rule-get', { status: r1.status, trigger: r1.trigger, action: r1.action })

  await run('rule-disable', () => ow.rules.disable({ name: `${name}-r2` }))
  const disabled = await run('rule-disable', () => ow.rules.get({ name: `${name}-r2` }))
  check('rule-disable', disabled.status === 'inactive', `status ${disabled.status}`)
  pass('rule-disable', { status: disabled.status })
  await run('rule-enable', () => ow.rules.enable({ name: `${name}-r2` }))
  const enabled = await run('rule-enable', () => ow.rules.get({ name: `${name}-r2` }))
  check('rule-enable', enabled.status === 'active', `status ${enabled.status}`)
  pass('rule-enable', { status: enabled.status })

  const got = await run('trigger-get', () => ow.triggers.get({ name: trigger }))
  pass('trigger-get', { rules: Object.keys(got.rules || {}) })

  const fired = await run('trigger-fire', () => ow.triggers.invoke({ name: trigger, params: { x: 1 } }))
  check('trigger-fire', fired && typeof fired.activationId === 'string', () => JSON.stringify(fired))
  pass('trigger-fire', { activation_id: fired.activationId })

  const triggerRecord = await record(ow, 'trigger-record', fired.activationId)
  const lines = (triggerRecord.logs || []).map(line => JSON.parse(line))
  check('trigger-record', lines.length === 2 && lines.every(l => l.success && l.statusCode === 0), () => JSON.stringify(triggerRecord.logs))
  pass('trigger-record', { name: triggerRecord.name, logs: lines })

  const results = {}
  for (const line of lines) {
    const activation = await record(ow, 'rule-activations', line.activationId)
    results[activation.name] = { result: activation.response.result, cause: activation.cause }
  }
  pass('rule-activations', { results })

  const triggers = await run('lists', () => ow.triggers.list())
  const rules = await run('lists', () => ow.rules.list())
  check('lists', triggers.some(t => t.name === trigger) && rules.filter(r => r.name.startsWith(name)).length === 2,
    () => `triggers ${JSON.stringify(triggers.map(t => t.name))} rules ${JSON.stringify(rules.map(r => r.name))}`)
  pass('lists', {})

  await expectError('rule-missing-action', 400, () => ow.rules.create({ name: `${name}-r3`, trigger, action: `${name}-missing` }))
  await expectError('fire-missing', 404, () => ow.triggers.invoke({ name: `${name}-missing` }))

  // feeds: the trigger first (as wsk does), then the feed action with lifecycleEvent CREATE.
  const alarm = `${name}-alarm`
  await run('feed-create', () => ow.triggers.create({ name: alarm, trigger: { annotations: [{ key: 'feed', value: '/whisk.system/alarms/interval' }] } }))
  const feed = await run('feed-create', () => ow.feeds.create({ name: '/whisk.system/alarms/interval', trigger: alarm, params: { minutes: 1 } }))
  pass('feed-create', { response: feed.response && feed.response.result })
  const read = await run('feed-get', () => ow.feeds.get({ name: '/whisk.system/alarms/interval', trigger: alarm }))
  pass('feed-get', { result: read.response && read.response.result })
  await run('feed-delete', () => ow.feeds.delete({ name: '/whisk.system/alarms/interval', trigger: alarm }))
  pass('feed-delete', {})

  await run('cleanup', async () => {
    await ow.rules.delete({ name: `${name}-r1` }) // an active rule: deleting it works
    await ow.rules.delete({ name: `${name}-r2` })
    await ow.triggers.delete({ name: trigger })
    await ow.triggers.delete({ name: alarm })
    await ow.actions.delete({ name: wasm })
    await ow.actions.delete({ name: py })
  })
  pass('cleanup', {})
  await expectError('trigger-deleted', 404, () => ow.triggers.get({ name: trigger }))
  pass('done', { name })
}

finish(main())
