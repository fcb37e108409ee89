#!/usr/bin/env bash
# A Docker daemon for the Docker executor and its tests, on machines where none runs yet.
#
#   deploy/local/dockerd.sh up       install Debian's docker.io if dockerd is missing; reuse a daemon that
#                                    already answers `docker info`; otherwise start dockerd in the
#                                    background and return once it answers
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
# Exit status 4 means Docker cannot be had here (not root, or apt cannot install docker.io): test
# fixtures skip on it rather than fail.
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
        return 0
    fi
    check_permission
    if pid="$(our_pid)"; then
        wait_ready "$pid" "$t0"
        return 0
    fi
    rm -f "$pid_file"
    if [[ -z "${DOCKER_HOST:-}" ]] && pid="$(foreign_dockerd)"; then
        say "a dockerd not started by this script is coming up (pid $pid); waiting for it"
        wait_ready "$pid" "$t0"
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
