#!/usr/bin/env bash
# Kernel limits for many sleeping WASM activations in one process (issue 17; docs/benchmarks.md, "20,000
# sleeping WASM activations"). Idempotent: raises a limit only when it is below what is needed, never lowers
# one, and prints what it found and did. Safe to run twice, and harmless where WASM capacity does not matter.
#
#   deploy/local/host-tuning.sh            # for PYWHISK_WASM_MAX_RUNS runs (default 4096)
#   deploy/local/host-tuning.sh 20500      # for 20,500 runs at once
#
# - vm.max_map_count: each sleeping run holds ~8.6 memory mappings (its thread's stack and Wasmtime's signal
#   stack, each with a guard page; its Store's linear-memory reservation split by the copy-on-write image), so
#   the default 65,530 caps a process near 7,000 sleepers. Needed: 10 per run plus 65,536 for everything else.
# - kernel.pid_max: every run in progress holds a thread, and threads take ids from the same space as
#   processes (32,768 by default). Needed: one per run plus 8,192.
# - RLIMIT_NOFILE is only reported: a sleeping run holds no descriptor any more, and a script cannot raise its
#   caller's limit (start the server from a shell with `ulimit -n` raised where the hard limit allows).
#
# The changes last until the next boot (sysctl -w, not /etc/sysctl.d): a development machine's setting.
set -euo pipefail

runs=${1:-${PYWHISK_WASM_MAX_RUNS:-4096}}
if ! [[ "$runs" =~ ^[0-9]+$ ]]; then
  echo "host-tuning: the number of runs must be a whole number, not '$runs'" >&2
  exit 2
fi

raise() { # raise <sysctl name> <needed value>
  local name=$1 needed=$2 path current
  path=/proc/sys/${name//.//}
  if [ ! -r "$path" ]; then
    echo "host-tuning: $name: not available here, skipped"
    return
  fi
  current=$(cat "$path")
  if [ "$current" -ge "$needed" ]; then
    echo "host-tuning: $name = $current (>= $needed needed for $runs runs): unchanged"
  elif (echo "$needed" >"$path") 2>/dev/null; then
    echo "host-tuning: $name: $current -> $needed (for $runs runs; until the next boot)"
  else
    echo "host-tuning: WARNING: $name = $current is below the $needed needed for $runs runs, and cannot be" \
      "raised here (run as root: sysctl -w $name=$needed)" >&2
  fi
}

raise vm.max_map_count $((runs * 10 + 65536))
raise kernel.pid_max $((runs + 8192))
echo "host-tuning: RLIMIT_NOFILE of this shell: soft $(ulimit -Sn), hard $(ulimit -Hn) (a sleeping run needs none)"
