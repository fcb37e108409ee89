// membomb: allocates 1 MiB at a time and touches it, forever (the twin of actions/src/membomb.c) --
// ends when the memory limit (the container's, or the WASM instance's) is hit.
function main(args) {
  const chunks = [];
  for (let mib = 1; ; mib++) {
    const chunk = new Uint8Array(1024 * 1024);
    chunk.fill(mib & 0xff);
    chunks.push(chunk);
    if (mib % 64 === 0) console.error(`membomb: ${mib} MiB`);
  }
}
