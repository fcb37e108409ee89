"""The JavaScript runner's guest sources (app.js, runner.wit, build.mjs), package data of executor_wasm."""
