#!/usr/bin/env bash
# The four loadgen experiments on each executor, then their reports and the Docker/WASM comparisons:
# what docs/benchmarks.md "loadgen" reports. Runs against a server that is already up (APIHOST/AUTH from
# ~/.wskprops or --apihost/--auth in LOADGEN_ARGS), e.g. `pywhisk standalone` started with
# PYWHISK_USER_MEMORY_MB=1048576: the pool charges every run its action's memory (128 MB here), so the
# capacity levels (up to 6,000 WASM sleeps) need a budget of levels × 128 MB (docs/deployment.md (e)).
#
#   bench/loadgen-all.sh OUT [EXECUTOR...]       (default executors: wasm docker)
#
# Knobs (environment): COLD_LEVELS (15), COLD_RUNS (3), RAMP_ABORT (15), RAMP_STEP_S (5), MIXED_SHARES
# ("10 50 90"), CAPACITY_WASM ("1000 1000 6000": start step max), CAPACITY_DOCKER ("50 50 400"), LOADGEN_ARGS.
set -euo pipefail

out=${1:?usage: bench/loadgen-all.sh OUT [EXECUTOR...]}
shift
executors=("$@")
[ ${#executors[@]} -gt 0 ] || executors=(wasm docker)
read -r -a extra <<<"${LOADGEN_ARGS:-}"
mkdir -p "$out"

step() { printf '\n== %s\n' "$*"; }
capacity_levels() {
    case $1 in
        wasm | python-wasm) echo "${CAPACITY_WASM:-1000 1000 6000}" ;;
        *) echo "${CAPACITY_DOCKER:-50 50 400}" ;;
    esac
}

for executor in "${executors[@]}"; do
    dir=$out/$executor
    step "$executor: setup"
    loadgen setup --executor "$executor" "${extra[@]}"
    step "$executor: cold start"
    loadgen coldstart --executor "$executor" --levels "${COLD_LEVELS:-15}" --runs "${COLD_RUNS:-3}" \
        --out "$dir/coldstart" "${extra[@]}"
    for action in hello hash; do
        step "$executor: concurrency ramp, $action"
        loadgen concurrency --executor "$executor" --action "$action" --abort-after "${RAMP_ABORT:-15}" \
            --increase-after "${RAMP_STEP_S:-5}" --out "$dir/concurrency-$action" "${extra[@]}"
    done
    for share in ${MIXED_SHARES:-10 50 90}; do
        step "$executor: mixed load, $share % I/O"
        loadgen mixed --executor "$executor" --io-share "$share" --abort-after "${RAMP_ABORT:-15}" \
            --increase-after "${RAMP_STEP_S:-5}" --out "$dir/mixed-$share" "${extra[@]}"
    done
    read -r start stride maximum <<<"$(capacity_levels "$executor")"
    step "$executor: capacity, sleep, levels $start..$maximum by $stride"
    loadgen capacity --executor "$executor" --action sleep --start "$start" --step "$stride" --max "$maximum" \
        --out "$dir/capacity" "${extra[@]}" || echo "capacity on $executor stopped early (see its summary.json)"
done

step "reports"
for run in "$out"/*/*/; do
    [ -f "$run/summary.json" ] && loadgen report "$run" >/dev/null && echo "  ${run}report/report.md"
done
if [ -d "$out/docker" ] && [ -d "$out/wasm" ]; then
    for run in "$out"/wasm/*/; do
        name=$(basename "$run")
        [ -d "$out/docker/$name" ] && loadgen compare "$out/docker/$name" "$run" --out "$out/compare/$name" >/dev/null &&
            echo "  $out/compare/$name"
    done
fi
