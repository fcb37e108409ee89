#!/usr/bin/env bash
# A local CouchDB-API server for pywhisk's integration tests: pouchdb-server 4.2.0 from npm.
#
#   deploy/local/couchdb.sh up       install if needed, start in the background, return once GET / answers
#   deploy/local/couchdb.sh down     stop it and wait until it has exited
#   deploy/local/couchdb.sh status   say whether it runs and answers (exit 0 if it does, 3 if not)
#
# Idempotent and usable from any cwd. CouchDB itself is neither in Debian nor on PyPI; pouchdb-server
# speaks CouchDB's HTTP API (databases, documents, _bulk_docs, JavaScript views with _count) and its
# npm package bundles prebuilt leveldown, so nothing is compiled. Production uses CouchDB 3 (docker-compose).
#
# Environment:
#   PYWHISK_CACHE          where npm installs pouchdb-server   (default ~/.cache/pywhisk; -> .../pouchdb-server)
#   PYWHISK_DATA           where the databases live            (default ~/.cache/pywhisk; -> .../couchdb-data)
#   PYWHISK_COUCHDB_PORT   port on 127.0.0.1                   (default 5984)
#   PYWHISK_COUCHDB_ADMIN  "user:password" to leave "admin party" (default unset: anyone may do anything,
#                          as pouchdb-server and CouchDB 1.x do with no admins configured)
#   PYWHISK_COUCHDB_LOG_LEVEL  debug|info|warning|error|none  (default warning: info logs every request)
#   NPM                    the npm to use                      (default npm)
# The pid file, config and logs sit in the data directory. One data directory serves one port at a time
# (leveldb locks its files), so give each extra instance its own PYWHISK_DATA.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
absolute() { if [[ "$1" == /* ]]; then echo "$1"; else echo "$PWD/$1"; fi; }
cache="$(absolute "${PYWHISK_CACHE:-$HOME/.cache/pywhisk}")"
install_dir="$cache/pouchdb-server"
data="$(absolute "${PYWHISK_DATA:-$HOME/.cache/pywhisk}")/couchdb-data"
port="${PYWHISK_COUCHDB_PORT:-5984}"
admin="${PYWHISK_COUCHDB_ADMIN:-}"
log_level="${PYWHISK_COUCHDB_LOG_LEVEL:-warning}"
npm_tool="${NPM:-npm}"
url="http://127.0.0.1:$port"
server_js="$install_dir/node_modules/pouchdb-server/bin/pouchdb-server"
pid_file="$data/pouchdb-server.pid"
log_file="$data/pouchdb-server.log"    # pouchdb-server's own log (config log.file)
out_file="$data/pouchdb-server.out"    # stdout/stderr: crashes and "port in use" land here
start_timeout_s=60

say() { echo "couchdb: $*"; }
die() { echo "couchdb: $*" >&2; exit 1; }

answers() {
    # GET / with a short timeout; prints the welcome body on success.
    curl -fsS --max-time 2 "$url/" 2>/dev/null
}

running_pid() {
    # The pid from the pid file if that process is alive and is a pouchdb-server (pids get reused).
    [[ -f "$pid_file" ]] || return 1
    local pid
    pid="$(cat "$pid_file" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q pouchdb-server || return 1
    echo "$pid"
}

show_logs() {
    for f in "$out_file" "$log_file"; do
        if [[ -s "$f" ]]; then
            echo "---- last lines of $f" >&2
            tail -n 25 "$f" >&2
        fi
    done
}

install() {
    command -v node >/dev/null 2>&1 || die "node not found: pouchdb-server needs Node.js (apt-get install nodejs npm)"
    command -v "$npm_tool" >/dev/null 2>&1 || die "npm not found (apt-get install npm)"
    # Installed and from the committed lock file: nothing to do. A changed lock file reinstalls.
    if [[ -f "$server_js" ]] && cmp -s "$here/couchdb/package-lock.json" "$install_dir/package-lock.json"; then
        return 0
    fi
    say "installing pouchdb-server into $install_dir (npm ci; about 10 s)"
    mkdir -p "$install_dir"
    cp "$here/couchdb/package.json" "$here/couchdb/package-lock.json" "$install_dir/"
    local started=$SECONDS
    (cd "$install_dir" && "$npm_tool" ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error) \
        || die "npm ci failed in $install_dir"
    [[ -f "$server_js" ]] || die "npm ci finished but $server_js is missing"
    say "installed pouchdb-server $(node -p "require('$install_dir/node_modules/pouchdb-server/package.json').version") in $((SECONDS - started)) s"
}

write_config() {
    # pouchdb-server keeps its /_config in this file; it rewrites it itself (and hashes admin passwords).
    local admins="{}"
    if [[ -n "$admin" ]]; then
        [[ "$admin" == *:* ]] || die "PYWHISK_COUCHDB_ADMIN must be user:password"
        admins="$(node -e 'const [u, ...p] = process.argv[1].split(":"); console.log(JSON.stringify({[u]: p.join(":")}))' "$admin")"
    fi
    node -e '
        const [file, logFile, level, admins] = process.argv.slice(1);
        const fs = require("fs");
        let config = {};
        try { config = JSON.parse(fs.readFileSync(file, "utf8")); } catch (e) {}
        config.log = { ...(config.log || {}), file: logFile, level };
        config.admins = JSON.parse(admins);
        fs.writeFileSync(file, JSON.stringify(config, null, 2) + "\n");
    ' "$data/config.json" "$log_file" "$log_level" "$admins"
}

up() {
    command -v curl >/dev/null 2>&1 || die "curl not found (apt-get install curl)"
    local pid body
    if pid="$(running_pid)"; then
        if answers >/dev/null; then
            say "already running at $url (pid $pid, data $data)"
            return 0
        fi
        say "pid $pid is starting; waiting for $url"
    else
        rm -f "$pid_file"
        if body="$(answers)"; then
            # Someone else's server (another data dir, a real CouchDB): usable, but not ours to manage.
            say "a server not started from $data already answers at $url: $body"
            return 0
        fi
        install
        mkdir -p "$data"
        write_config
        say "starting pouchdb-server on $url (data $data)"
        : >"$out_file"
        # setsid: its own session, so a Ctrl-C or the test runner's process group does not take it down.
        # 9>&-: the server must not inherit the lock below, or the next `up` would wait for it forever.
        (cd "$data" && exec setsid node "$server_js" --host 127.0.0.1 --port "$port" --dir "$data" \
            --config "$data/config.json" --no-stdout-logs --no-color </dev/null >>"$out_file" 2>&1 9>&-) &
        pid=$!
        echo "$pid" >"$pid_file"
    fi
    local started=$SECONDS
    until answers >/dev/null; do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$pid_file"
            show_logs
            die "pouchdb-server exited before answering at $url"
        fi
        if grep -q "already in use" "$out_file" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
            rm -f "$pid_file"
            show_logs
            die "port $port is taken by another process; set PYWHISK_COUCHDB_PORT"
        fi
        if (( SECONDS - started >= start_timeout_s )); then
            show_logs
            die "pouchdb-server (pid $pid) did not answer at $url within $start_timeout_s s"
        fi
        sleep 0.1
    done
    say "up at $url (pid $pid) after $((SECONDS - started)) s"
}

down() {
    local pid
    if ! pid="$(running_pid)"; then
        rm -f "$pid_file"
        say "not running (data $data)"
        return 0
    fi
    say "stopping pid $pid"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 200); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        say "pid $pid ignored SIGTERM for 20 s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    fi
    rm -f "$pid_file"
    say "stopped"
}

status() {
    local pid body
    if pid="$(running_pid)"; then
        if body="$(answers)"; then
            say "running at $url (pid $pid, data $data): $body"
            return 0
        fi
        say "pid $pid is alive but $url does not answer"
        return 3
    fi
    if body="$(answers)"; then
        say "not started from $data, but a server answers at $url: $body"
        return 0
    fi
    say "not running (data $data)"
    return 3
}

lock() {
    # Two `up`s at once (parallel test sessions) must not both run npm ci or start two servers.
    if command -v flock >/dev/null 2>&1; then
        mkdir -p "$data"
        exec 9>"$data/.couchdb.sh.lock"
        flock 9
    fi
}

case "${1:-}" in
    up) lock; up ;;
    down) lock; down ;;
    status) status ;;
    -h|--help|help) sed -n '2,21p' "$0" ;;
    *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
