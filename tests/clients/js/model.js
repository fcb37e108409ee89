#!/usr/bin/env node
// Drives OpenWhisk's programming model beyond single actions with the official JavaScript client
// (the `openwhisk` npm package), as an application would: a package with an action, a binding whose
// parameters override the package's, a sequence of three components across the WASM and Docker
// executors, a web action fetched without credentials, and the errors of deleting a non-empty package.
// Prints one JSON line per step; exits 1 at the first unexpected outcome, 2 on bad usage.
//
//   node model.js --apihost http://HOST:PORT --auth UUID:KEY --echo-wasm echo.wasm --hello-wasm hello.wasm \
//        [--python-kind python:3.11] [--name NAME]
'use strict'

const fs = require('fs')
const crypto = require('crypto')
const http = require('http')
const openwhisk = require('openwhisk')

const { check, expectError, finish, parseArgs, pass, run } = require('./steps')

const REQUIRED = ['apihost', 'auth', 'echo-wasm', 'hello-wasm']
const USAGE = 'node model.js --apihost URL --auth UUID:KEY --echo-wasm echo.wasm --hello-wasm hello.wasm [--python-kind KIND] [--name NAME]'

// A GET without credentials, as a browser fetches a web action.
function get (url) {
  return new Promise((resolve, reject) => {
    http.get(url, res => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', chunk => { body += chunk })
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }))
    }).on('error', reject)
  })
}

async function main () {
  const args = parseArgs(process.argv.slice(2), REQUIRED, USAGE)
  const name = args.name || `owmodel-js-${crypto.randomBytes(3).toString('hex')}`
  const pythonKind = args['python-kind'] || 'python:3.11'
  const ow = openwhisk({ apihost: args.apihost, api_key: args.auth, namespace: '_', ignore_certs: true })
  const [namespace] = await run('namespaces', () => ow.namespaces.list())
  pass('namespaces', { namespace })

  const pkg = `${name}-pkg`
  const bind = `${name}-bind`
  const created = await run('package-create', () => ow.packages.create({
    name: pkg,
    package: { publish: false, parameters: [{ key: 'p', value: 'package' }, { key: 'shared', value: 'package' }] }
  }))
  check('package-create', created.name === pkg && created.version === '0.0.1', () => JSON.stringify(created))
  pass('package-create', { name: created.name, binding: created.binding })

  await run('package-action-create', () => ow.actions.create({
    name: `${pkg}/echo`, action: fs.readFileSync(args['echo-wasm']), kind: 'wasm:wasi', params: { a: 'action' }
  }))
  pass('package-action-create', {})

  const got = await run('package-get', () => ow.packages.get({ name: pkg }))
  check('package-get', (got.actions || []).some(a => a.name === 'echo'), () => `actions ${JSON.stringify(got.actions)}`)
  pass('package-get', { actions: got.actions.map(a => a.name), parameters: got.parameters })

  const bound = await run('binding-create', () => ow.packages.create({
    name: bind,
    package: { binding: { namespace, name: pkg }, parameters: [{ key: 'shared', value: 'binding' }, { key: 'b', value: 'binding' }] }
  }))
  check('binding-create', bound.binding && bound.binding.name === pkg, () => JSON.stringify(bound))
  pass('binding-create', { binding: bound.binding })

  const listed = await run('package-list', () => ow.packages.list())
  const names = listed.map(p => p.name)
  check('package-list', names.includes(pkg) && names.includes(bind), `listed ${JSON.stringify(names)}`)
  pass('package-list', { names })

  const merged = await run('binding-invoke', () => ow.actions.invoke({
    name: `${bind}/echo`, params: { i: 'invoke' }, blocking: true, result: true
  }))
  pass('binding-invoke', { result: merged })

  // A sequence across executors: echo (WASM) → upper-case the name (Python on Docker) → hello (WASM).
  await run('sequence-parts', async () => {
    await ow.actions.create({ name: `${name}-upper`, action: "def main(args):\n    return {'name': args.get('name', '?').upper()}\n", kind: pythonKind })
    await ow.actions.create({ name: `${name}-hello`, action: fs.readFileSync(args['hello-wasm']), kind: 'wasm:wasi' })
  })
  pass('sequence-parts', {})
  const components = [`/${namespace}/${pkg}/echo`, `/${namespace}/${name}-upper`, `/${namespace}/${name}-hello`]
  const seq = await run('sequence-create', () => ow.actions.create({
    name: `${name}-seq`, action: { exec: { kind: 'sequence', components } }
  }))
  check('sequence-create', seq.exec && seq.exec.kind === 'sequence', () => JSON.stringify(seq.exec))
  pass('sequence-create', { components: seq.exec.components })

  const activation = await run('sequence-invoke', () => ow.actions.invoke({ name: `${name}-seq`, params: { name: 'ada' }, blocking: true }))
  check('sequence-invoke', activation.response && activation.response.success, () => JSON.stringify(activation.response))
  pass('sequence-invoke', { result: activation.response.result, logs: activation.logs, activation_id: activation.activationId })

  await run('web-create', () => ow.actions.create({
    name: `${name}-web`, action: fs.readFileSync(args['echo-wasm']), kind: 'wasm:wasi', annotations: { 'web-export': true }
  }))
  pass('web-create', {})
  const web = await run('web-get', () => get(`${args.apihost}/api/v1/web/${namespace}/default/${name}-web.json?x=1`))
  check('web-get', web.status === 200, () => `status ${web.status}: ${web.body}`)
  pass('web-get', { status: web.status, content_type: web.headers['content-type'], body: JSON.parse(web.body) })

  await expectError('package-delete-nonempty', 409, () => ow.packages.delete({ name: pkg }))

  await run('cleanup', async () => {
    for (const action of [`${name}-web`, `${name}-seq`, `${name}-upper`, `${name}-hello`, `${pkg}/echo`]) {
      await ow.actions.delete({ name: action })
    }
    await ow.packages.delete({ name: bind })
    await ow.packages.delete({ name: pkg })
  })
  pass('cleanup', {})
  await expectError('package-deleted', 404, () => ow.packages.get({ name: pkg }))
  pass('done', { name })
}

finish(main())
