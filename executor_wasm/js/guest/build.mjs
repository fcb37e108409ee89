// Builds the JavaScript runner component: node build.mjs <componentize.js> <app.js> <runner.wit> <output>.
// Run by executor_wasm/js/build.py with the componentize-js it installed; `http` and `fetch-event` are left
// out of the engine so that the component imports no wasi:http (no network: docs/javascript.md).
import { writeFile } from "node:fs/promises";

const [componentizeJs, sourcePath, witPath, output] = process.argv.slice(2);
const { componentize } = await import(componentizeJs);
const { component } = await componentize({
  sourcePath,
  witPath,
  worldName: "runner",
  disableFeatures: ["http", "fetch-event"],
});
await writeFile(output, component);
