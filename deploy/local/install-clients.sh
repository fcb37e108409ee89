#!/usr/bin/env bash
# Installs the real OpenWhisk clients that tests/e2e/test_openwhisk_clients.py drives:
#   - tests/clients/go: a scenario built on github.com/apache/openwhisk-client-go (the
#     library the `wsk` CLI is made of), built into $PYWHISK_CACHE/bin/owclient-go;
#   - tests/clients/js: the `openwhisk` npm package, installed into its node_modules.
# Idempotent: the Go binary is rebuilt only when it is older than its sources, and npm runs
# only when node_modules is missing (or older than package-lock.json). Works from any cwd.
#
# Environment: PYWHISK_CACHE (default ~/.cache/pywhisk); GO and NPM to pick the tools.
# Options: --go-only, --js-only, --force (rebuild and reinstall regardless).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cache="${PYWHISK_CACHE:-$HOME/.cache/pywhisk}"
go_src="$repo/tests/clients/go"
js_dir="$repo/tests/clients/js"
bin="$cache/bin/owclient-go"
go_tool="${GO:-go}"
npm_tool="${NPM:-npm}"

do_go=1 do_js=1 force=0
for arg in "$@"; do
    case "$arg" in
        --go-only) do_js=0 ;;
        --js-only) do_go=0 ;;
        --force) force=1 ;;
        -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
        *) echo "install-clients: unknown option $arg" >&2; exit 2 ;;
    esac
done

say() { echo "install-clients: $*"; }

if (( do_go )); then
    if ! command -v "$go_tool" >/dev/null 2>&1; then
        say "go not found: cannot build owclient-go" >&2
        exit 1
    fi
    stale=$force
    if [[ ! -x "$bin" ]]; then
        stale=1
    else
        for f in "$go_src"/*.go "$go_src/go.mod" "$go_src/go.sum"; do
            if [[ "$f" -nt "$bin" ]]; then stale=1; break; fi
        done
    fi
    if (( stale )); then
        say "building $bin from tests/clients/go ($("$go_tool" version | cut -d' ' -f3))"
        mkdir -p "$(dirname "$bin")"
        # -mod=readonly: go.mod/go.sum are committed and must not change here.
        (cd "$go_src" && "$go_tool" build -mod=readonly -trimpath -o "$bin.tmp" . && mv -f "$bin.tmp" "$bin")
        say "built $bin"
    else
        say "$bin is up to date"
    fi
fi

if (( do_js )); then
    if ! command -v "$npm_tool" >/dev/null 2>&1; then
        say "npm not found: cannot install the openwhisk npm package" >&2
        exit 1
    fi
    modules="$js_dir/node_modules"
    marker="$modules/.package-lock.json"   # written by npm on every install
    if (( force )) || [[ ! -d "$modules/openwhisk" ]] || [[ ! -e "$marker" ]] \
        || { [[ -f "$js_dir/package-lock.json" ]] && [[ "$js_dir/package-lock.json" -nt "$marker" ]]; }; then
        if [[ -f "$js_dir/package-lock.json" ]]; then
            say "npm ci in tests/clients/js (node $(node --version 2>/dev/null || echo '?'))"
            (cd "$js_dir" && "$npm_tool" ci --no-audit --no-fund --loglevel=error)
        else
            say "npm install in tests/clients/js (no package-lock.json yet)"
            (cd "$js_dir" && "$npm_tool" install --no-audit --no-fund --loglevel=error)
        fi
        say "installed openwhisk $(cd "$js_dir" && node -p 'require("openwhisk/package.json").version' 2>/dev/null || echo '?')"
    else
        say "tests/clients/js/node_modules is up to date"
    fi
fi
