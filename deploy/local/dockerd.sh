#!/usr/bin/env bash
# A Docker daemon for the Docker executor and its tests, on machines where none runs yet.
#
#   deploy/local/dockerd.sh up       install Debian's docker.io if dockerd is missing; reuse a daemon that
#                                    already answers `docker info`; otherwise start dockerd in the
#                                    background and return once it answers. Then make sure the daemon
#                                    knows the OCI runtime `crun` beside runc (below)
#   deploy/local/dockerd.sh down     stop the daemon, but only one that this script started
#   deploy/local/dockerd.sh status   say whether a daemon answers (exit 0 if one does, 3 if not)
#
# Idempotent and usable from any cwd. Needs root to install or start a daemon (reusing one does not).
# No registry is assumed: images are built locally (deploy/local/build-images).
# Environment:
#   PYWHISK_DATA             the pid file and log go to $PYWHISK_DATA/dockerd (default ~/.cache/pywhisk)
#   PYWHISK_DOCKERD_TIMEOUT  seconds `up` waits for the daemon to answer (default 60)
#   DOCKERD_ARGS             extra dockerd options for a daemon this script starts (never --bridge=none
#                            on a machine whose main daemon uses docker0: it deletes that bridge)
#   DOCKER_HOST              as for the docker CLI: the daemon to talk to
#   PYWHISK_DOCKERD_CRUN     1 (default): install Debian's crun if missing and register it with a local
#                            dockerd as runtime `crun` (a `runtimes` entry in its daemon.json, read again
#                            with SIGHUP: no restart, running containers are left alone; nothing is
#                            written or signalled when the daemon knows `crun` already); 0: leave it out
#   PYWHISK_DOCKERD_CONFIG   the daemon.json to write that entry to (default: the --config-file of the
#                            running dockerd, else /etc/docker/daemon.json)
# Exit status 4 means Docker cannot be had here (not root, or apt cannot install docker.io): test
# fixtures skip on it rather than fail. crun is optional: when it cannot be had, `up` says why and
# succeeds, and the executor's crun tests skip (the Docker executor runs on runc by default).
set -euo pipefail

absolute() { if [[ "$1" == /* ]]; then echo "$1"; else echo "$PWD/$1"; fi; }
state="$(absolute "${PYWHISK_DATA:-$HOME/.cache/pywhisk}")/dockerd"
pid_file="$state/dockerd.pid"
log_file="$state/dockerd.log"
timeout_s="${PYWHISK_DOCKERD_TIMEOUT:-60}"

say() { echo "dockerd.sh: $*"; }
die() { echo "dockerd.sh: $*" >&2; exit 1; }
unavailable() { echo "dockerd.sh: $*" >&2; exit 4; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# Prints the server version when a daemon answers; a hung socket must not hang `up`.
answers() {
    command -v docker >/dev/null 2>&1 || return 1
    timeout 10 docker info --format '{{.ServerVersion}}' 2>"$state/info.err" | grep -v '^$'
}

# A daemon runs but this user may not use its socket: nothing this script could fix.
check_permission() {
    if grep -qi 'permission denied' "$state/info.err" 2>/dev/null; then
        unavailable "no permission to use the Docker daemon's socket (run as root or join the docker group): $(head -n1 "$state/info.err")"
    fi
}

alive() { [[ -d "/proc/$1" ]]; }

# The pid of the daemon this script started, if it is alive (a stale pid file or a reused pid does not count).
our_pid() {
    [[ -f "$pid_file" ]] || return 1
    local pid
    pid="$(cat "$pid_file" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] && alive "$pid" || return 1
    [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == dockerd ]] || return 1
    echo "$pid"
}

# A dockerd someone else started (systemd, another checkout, a human) that may still be coming up.
foreign_dockerd() {
    local pid
    for pid in $(pgrep -x dockerd 2>/dev/null || true); do
        [[ "$pid" == "$(cat "$pid_file" 2>/dev/null || true)" ]] && continue
        echo "$pid"
        return 0
    done
    return 1
}

show_log() {
    [[ -s "$log_file" ]] || return 0
    echo "---- last lines of $log_file" >&2
    tail -n 30 "$log_file" >&2
}

install_docker() {
    command -v dockerd >/dev/null 2>&1 && command -v docker >/dev/null 2>&1 && return 0
    [[ "$(id -u)" == 0 ]] || unavailable "dockerd is not installed and installing docker.io needs root (apt-get install docker.io)"
    command -v apt-get >/dev/null 2>&1 || unavailable "dockerd is not installed and there is no apt-get to install docker.io"
    local t0
    t0="$(now)"
    say "installing Debian's docker.io (first time only)"
    export DEBIAN_FRONTEND=noninteractive
    # An install from stale or missing package lists fails; update them once and retry.
    if ! apt-get install -y -q --no-install-recommends docker.io >"$state/apt.log" 2>&1; then
        apt-get update -q >>"$state/apt.log" 2>&1 || { tail -n 20 "$state/apt.log" >&2; unavailable "apt-get update failed"; }
        apt-get install -y -q --no-install-recommends docker.io >>"$state/apt.log" 2>&1 \
            || { tail -n 20 "$state/apt.log" >&2; unavailable "apt-get install docker.io failed (log: $state/apt.log)"; }
    fi
    say "installed docker.io in $(elapsed "$t0") s"
}

# Whether the daemon lists an OCI runtime called crun (`docker info` Runtimes).
knows_crun() {
    timeout 10 docker info --format '{{range $name, $_ := .Runtimes}}{{$name}} {{end}}' 2>/dev/null \
        | tr ' ' '\n' | grep -qx crun
}

# The daemon.json a local dockerd reads: its --config-file if it was given one.
daemon_config() {
    local pid="$1" args
    if [[ -n "${PYWHISK_DOCKERD_CONFIG:-}" ]]; then echo "$PYWHISK_DOCKERD_CONFIG"; return; fi
    args="$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null || true)"
    awk 'prev == "--config-file" { print; found = 1; exit } /^--config-file=/ { sub(/^--config-file=/, ""); print; found = 1; exit }
         { prev = $0 } END { if (!found) print "/etc/docker/daemon.json" }' <<<"$args"
}

# On a hybrid cgroup host (v1 controllers, and a cgroup2 hierarchy at /sys/fs/cgroup/unified) crun 1.8
# refuses to start anything while the v2 side holds a controller ("cgroups in hybrid mode not supported,
# drop all controllers from cgroupv2"); runc does not care. Seen here: hugetlb, the one controller not
# mounted as v1. A controller no v2 cgroup has enabled can be mounted as a v1 hierarchy, which takes it off
# the v2 side, as on hosts that mount every controller v1. Mounts go with a reboot: `up` does it each time.
hybrid_cgroups_for_crun() {
    local unified=/sys/fs/cgroup/unified controller
    [[ "$(stat -f -c %T /sys/fs/cgroup 2>/dev/null)" == tmpfs ]] || return 0
    [[ "$(stat -f -c %T "$unified" 2>/dev/null)" == cgroup2fs ]] || return 0
    [[ -z "$(cat "$unified/cgroup.subtree_control" 2>/dev/null)" ]] || return 0  # in use on the v2 side
    for controller in $(cat "$unified/cgroup.controllers" 2>/dev/null); do
        mkdir -p "/sys/fs/cgroup/$controller"
        if mount -t cgroup -o "$controller" cgroup "/sys/fs/cgroup/$controller" 2>>"$state/crun.err"; then
            say "crun: mounted the $controller cgroup controller as v1 (crun refuses controllers on the v2 side of a hybrid host)"
        else
            say "crun: could not mount the $controller cgroup controller as v1 ($(tail -n1 "$state/crun.err")); crun may refuse to start containers"
        fi
    done
}

# crun beside runc (issue 17): Debian's crun, registered as runtime `crun`. dockerd reloads `runtimes`
# from daemon.json on SIGHUP (a "live-reloadable" option), so a running daemon and its containers stay up.
ensure_crun() {
    [[ "${PYWHISK_DOCKERD_CRUN:-1}" == 1 ]] || return 0
    [[ -z "${DOCKER_HOST:-}" && "$(id -u)" == 0 ]] && hybrid_cgroups_for_crun
    knows_crun && return 0
    local pid config i
    if [[ -n "${DOCKER_HOST:-}" ]]; then
        say "crun: DOCKER_HOST=$DOCKER_HOST is not a local daemon; register crun there by hand (runc only for now)"
        return 0
    fi
    if [[ "$(id -u)" != 0 ]]; then
        say "crun: installing and registering it needs root; the Docker executor runs on runc only"
        return 0
    fi
    if [[ ! -x /usr/bin/crun ]]; then
        say "crun: installing Debian's crun (first time only)"
        export DEBIAN_FRONTEND=noninteractive
        if ! apt-get install -y -q --no-install-recommends crun >>"$state/apt.log" 2>&1; then
            apt-get update -q >>"$state/apt.log" 2>&1 || true
            apt-get install -y -q --no-install-recommends crun >>"$state/apt.log" 2>&1 || {
                say "crun: apt-get install crun failed (log: $state/apt.log); the Docker executor runs on runc only"
                return 0
            }
        fi
    fi
    pid="$(our_pid || foreign_dockerd || true)"
    if [[ -z "$pid" ]]; then
        say "crun: no local dockerd process found to register crun with; runc only"
        return 0
    fi
    config="$(daemon_config "$pid")"
    mkdir -p "$(dirname "$config")"
    # Merge, keeping whatever else the file says; a file that is not JSON is not ours to rewrite.
    python3 - "$config" <<'PY' || { say "crun: $config is not a JSON object; add runtimes.crun by hand"; return 0; }
import json, os, sys
path = sys.argv[1]
config = {}
if os.path.exists(path) and os.path.getsize(path) > 0:
    with open(path) as f:
        config = json.load(f)
    if not isinstance(config, dict):
        sys.exit(1)
config.setdefault("runtimes", {})["crun"] = {"path": "/usr/bin/crun"}
with open(path + ".tmp", "w") as f:
    json.dump(config, f, indent=2)
    f.write("\n")
os.replace(path + ".tmp", path)
PY
    say "crun: registered in $config; reloading dockerd (pid $pid, SIGHUP)"
    kill -HUP "$pid"
    for ((i = 0; i < 100; i++)); do
        knows_crun && { say "crun: dockerd knows runtime crun ($(/usr/bin/crun --version | head -n1))"; return 0; }
        sleep 0.1
    done
    say "crun: dockerd did not pick up runtime crun after SIGHUP (see its log); the Docker executor runs on runc only"
}

wait_ready() {
    local pid="$1" t0="$2" deadline version
    deadline=$(($(date +%s) + timeout_s))
    while true; do
        if version="$(answers)"; then
            say "dockerd $version answers after $(elapsed "$t0") s"
            return 0
        fi
        check_permission
        if ! alive "$pid"; then
            show_log
            die "dockerd (pid $pid) exited during start-up (log above)"
        fi
        if (($(date +%s) >= deadline)); then
            show_log
            die "dockerd (pid $pid) did not answer \`docker info\` within $timeout_s s (log above; it is still running)"
        fi
        sleep 0.1
    done
}

up() {
    local t0 pid version
    t0="$(now)"
    # Two `up`s at once (parallel test sessions) must not both start a daemon.
    exec 9>"$state/.lock"
    flock -w "$((timeout_s + 300))" 9 || die "another dockerd.sh holds $state/.lock"
    if version="$(answers)"; then
        if pid="$(our_pid)"; then
            say "running (pid $pid, dockerd $version)"
        else
            say "using the running Docker daemon (dockerd $version)"
        fi
        ensure_crun
        return 0
    fi
    check_permission
    if pid="$(our_pid)"; then
        wait_ready "$pid" "$t0"
        ensure_crun
        return 0
    fi
    rm -f "$pid_file"
    if [[ -z "${DOCKER_HOST:-}" ]] && pid="$(foreign_dockerd)"; then
        say "a dockerd not started by this script is coming up (pid $pid); waiting for it"
        wait_ready "$pid" "$t0"
        ensure_crun
        return 0
    fi
    [[ -z "${DOCKER_HOST:-}" ]] || die "DOCKER_HOST=$DOCKER_HOST does not answer \`docker info\`"
    install_docker
    [[ "$(id -u)" == 0 ]] || unavailable "no Docker daemon answers and starting dockerd needs root"
    say "starting dockerd (log $log_file)"
    : >"$log_file"
    # setsid: the daemon is shared by test sessions and humans, so a Ctrl-C in the terminal that started
    # it must not reach it; `down` is the way to stop it. 9>&- keeps the lock out of the daemon.
    # shellcheck disable=SC2086  # DOCKERD_ARGS is a list of options
    setsid dockerd ${DOCKERD_ARGS:-} >>"$log_file" 2>&1 </dev/null 9>&- &
    pid=$!
    echo "$pid" >"$pid_file"
    wait_ready "$pid" "$t0"
    ensure_crun
}

down() {
    local pid i
    if ! pid="$(our_pid)"; then
        rm -f "$pid_file"
        if answers >/dev/null; then
            say "the running Docker daemon was not started by this script; leaving it alone"
        else
            say "stopped (was not running)"
        fi
        return 0
    fi
    say "stopping dockerd (pid $pid)"
    kill -TERM "$pid"
    # dockerd stops its containers (10 s grace each, in parallel) and its containerd before exiting.
    for ((i = 0; i < 600; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        say "still running after 60 s; killing it"
        kill -KILL "$pid"
        while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    fi
    rm -f "$pid_file"
    say "stopped"
}

status() {
    local version pid
    if version="$(answers)"; then
        if pid="$(our_pid)"; then
            echo "running (pid $pid, dockerd $version, started by this script; log $log_file)"
        else
            echo "running (dockerd $version, not started by this script)"
        fi
        echo "OCI runtimes: $(timeout 10 docker info --format '{{range $name, $_ := .Runtimes}}{{$name}} {{end}}' 2>/dev/null)"
        return 0
    fi
    if pid="$(our_pid)"; then
        echo "starting or hung (pid $pid does not answer docker info; log $log_file)"
    else
        echo "stopped"
    fi
    return 3
}

mkdir -p "$state"
case "${1:-}" in
    up) up ;;
    down) down ;;
    status) status ;;
    -h | --help | help) sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "$0" ;;
    *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
