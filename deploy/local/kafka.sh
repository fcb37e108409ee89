#!/usr/bin/env bash
# A single-node Apache Kafka broker (KRaft mode) on 127.0.0.1:9092 for local work and the
# integration tests, run from the Kafka jars on Maven Central (Kafka is in neither Debian nor PyPI).
#
#   deploy/local/kafka.sh up       resolve the jars once, format the storage once, start the broker
#                                  in the background and return when it serves clients
#   deploy/local/kafka.sh down     stop it and wait until it has exited
#   deploy/local/kafka.sh status   print running/stopped (exit 0 if running, 3 if not)
#
# Idempotent, works from any cwd. Needs java (17+), python3, and mvn the first time.
# Environment:
#   PYWHISK_KAFKA_PORT             client port (default 9092); the controller listens on port+1
#   PYWHISK_KAFKA_CONTROLLER_PORT  override the controller port
#   PYWHISK_CACHE                  jars go to $PYWHISK_CACHE/kafka/libs (default ~/.cache/pywhisk)
#   PYWHISK_DATA                   broker state goes to $PYWHISK_DATA/kafka-data (or kafka-data-PORT
#                                  for another port) (default ~/.cache/pywhisk)
#   PYWHISK_KAFKA_TIMEOUT          seconds `up` waits for the broker (default 90)
#   KAFKA_HEAP_OPTS                JVM heap (default -Xms256m -Xmx1g); JAVA, MVN, PYTHON pick tools
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
conf="$here/kafka"
cache="${PYWHISK_CACHE:-$HOME/.cache/pywhisk}"
data="${PYWHISK_DATA:-$HOME/.cache/pywhisk}"
port="${PYWHISK_KAFKA_PORT:-9092}"
controller_port="${PYWHISK_KAFKA_CONTROLLER_PORT:-$((port + 1))}"
timeout_s="${PYWHISK_KAFKA_TIMEOUT:-90}"
java_tool="${JAVA:-java}"
mvn_tool="${MVN:-mvn}"
python_tool="${PYTHON:-python3}"

libs="$cache/kafka/libs"
state="$data/kafka-data"
# Brokers on other ports (tests that restart their own broker) must not share a log dir.
[[ "$port" == 9092 ]] || state="$data/kafka-data-$port"
pid_file="$state/kafka.pid"
properties="$state/server.properties"

say() { echo "kafka.sh: $*"; }
die() { echo "kafka.sh: $*" >&2; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

need() {
    command -v "$1" >/dev/null 2>&1 || die "$1 not found: $2"
}

# The pid of our broker if it is alive; a pid file left by a crash (or a reused pid) does not count.
broker_pid() {
    [[ -f "$pid_file" ]] || return 1
    local pid
    pid="$(<"$pid_file")"
    [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "kafka.Kafka $properties" || return 1
    echo "$pid"
}

probe() {
    "$python_tool" "$conf/probe.py" 127.0.0.1 "$port"
}

show_logs() {
    local f
    for f in "$state/broker.out" "$state/server.log"; do
        [[ -s "$f" ]] || continue
        echo "---- last lines of $f" >&2
        tail -n 40 "$f" >&2
    done
}

# Resolve the broker's jars from Maven Central once; a changed pom.xml resolves them again.
resolve_jars() {
    local stamp want tmp t0
    stamp="$libs/.pom.sha256"
    want="$(sha256sum "$conf/pom.xml" | cut -d' ' -f1)"
    if [[ -f "$stamp" && "$(<"$stamp")" == "$want" ]]; then
        return 0
    fi
    need "$mvn_tool" "Maven resolves the Kafka jars the first time (apt-get install maven)"
    t0="$(now)"
    say "resolving the Kafka jars from Maven Central into $libs (first time only)"
    mkdir -p "$(dirname "$libs")"
    tmp="$libs.tmp.$$"
    rm -rf "$tmp"
    # Maven's output goes to a file and is shown only on failure (even -q leaves colour codes behind).
    # The dependency plugin is pinned in pom.xml.
    if ! "$mvn_tool" -q -B -Dstyle.color=never -f "$conf/pom.xml" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$tmp" >"$cache/kafka/mvn.log" 2>&1; then
        rm -rf "$tmp"
        tail -n 40 "$cache/kafka/mvn.log" >&2
        die "mvn could not resolve the Kafka jars (is Maven Central reachable? output above and in $cache/kafka/mvn.log)"
    fi
    echo "$want" >"$tmp/.pom.sha256"
    rm -rf "$libs"
    mv "$tmp" "$libs"
    rm -rf "$conf/target"
    say "resolved $(find "$libs" -name '*.jar' | wc -l) jars in $(elapsed "$t0") s"
}

check_java() {
    need "$java_tool" "the Kafka broker needs Java 17 or newer (apt-get install openjdk-17-jre-headless)"
    local major
    major="$("$java_tool" -version 2>&1 | sed -n 's/.* version "\([0-9]*\).*/\1/p' | head -n1)"
    [[ -n "$major" && "$major" -ge 17 ]] || die "the Kafka 4 broker needs Java 17 or newer, found: $("$java_tool" -version 2>&1 | head -n1)"
}

write_properties() {
    mkdir -p "$state/log"
    sed -e "s|@PORT@|$port|g" -e "s|@CONTROLLER_PORT@|$controller_port|g" -e "s|@LOG_DIRS@|$state/log|g" \
        "$conf/server.properties.in" >"$properties.tmp"
    mv "$properties.tmp" "$properties"
}

# KRaft log dirs must be formatted with a cluster id before the first start, and only then.
format_storage() {
    [[ -f "$state/log/meta.properties" ]] && return 0
    local cluster_id
    if [[ -s "$state/cluster.id" ]]; then
        cluster_id="$(<"$state/cluster.id")"
    else
        # A Kafka cluster id is 16 random bytes in URL-safe base64 without padding.
        cluster_id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
        echo "$cluster_id" >"$state/cluster.id"
    fi
    say "formatting $state/log for cluster $cluster_id"
    "$java_tool" -Dlog4j2.configurationFile="$conf/log4j2.properties" -Dkafka.logs.dir="$state" \
        -cp "$libs/*" kafka.tools.StorageTool format --ignore-formatted \
        --cluster-id="$cluster_id" --config="$properties" >"$state/format.out" 2>&1 \
        || { cat "$state/format.out" >&2; die "formatting the storage failed"; }
}

wait_ready() {
    local pid="$1" t0="$2" deadline last
    deadline=$(($(date +%s) + timeout_s))
    while true; do
        if last="$(probe)"; then
            say "ready on 127.0.0.1:$port ($last) after $(elapsed "$t0") s"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$pid_file"
            show_logs
            die "the broker exited during start-up (logs above, state in $state)"
        fi
        if (($(date +%s) >= deadline)); then
            show_logs
            die "the broker did not serve clients on 127.0.0.1:$port within $timeout_s s (last probe: $last; pid $pid still running, stop it with: $0 down)"
        fi
        sleep 0.25
    done
}

up() {
    local t0 pid
    t0="$(now)"
    need "$python_tool" "python3 checks that the broker answers"
    mkdir -p "$state"
    # Two `up`s at once (parallel test sessions) must not both format or start a broker.
    exec 9>"$state/.lock"
    flock -w "$((timeout_s + 600))" 9 || die "another kafka.sh holds $state/.lock"
    if pid="$(broker_pid)"; then
        wait_ready "$pid" "$t0"
        say "already running (pid $pid)"
        return 0
    fi
    rm -f "$pid_file"
    if probe >/dev/null; then
        say "a Kafka broker not started by this script already serves 127.0.0.1:$port; using it"
        return 0
    fi
    check_java
    resolve_jars
    write_properties
    format_storage
    say "starting the broker on 127.0.0.1:$port (controller :$controller_port, log $state/server.log)"
    : >"$state/broker.out"
    # setsid: the broker is shared, so a Ctrl-C in the terminal or test run that started it must
    # not reach it; `down` is the way to stop it. (setsid execs in place here, so $! is the JVM;
    # 9>&- keeps the lock fd out of the JVM, or the next `up` would wait for the broker to exit.)
    # shellcheck disable=SC2086  # KAFKA_HEAP_OPTS is a list of options
    setsid "$java_tool" ${KAFKA_HEAP_OPTS:--Xms256m -Xmx1g} -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
        -Djava.awt.headless=true -Dlog4j2.configurationFile="$conf/log4j2.properties" \
        -Dkafka.logs.dir="$state" -cp "$libs/*" kafka.Kafka "$properties" \
        >>"$state/broker.out" 2>&1 </dev/null 9>&- &
    pid=$!
    echo "$pid" >"$pid_file"
    wait_ready "$pid" "$t0"
}

down() {
    local pid i
    if ! pid="$(broker_pid)"; then
        rm -f "$pid_file"
        say "stopped (was not running on 127.0.0.1:$port)"
        return 0
    fi
    say "stopping the broker (pid $pid)"
    kill -TERM "$pid"
    # A controlled shutdown of a single KRaft node takes a few seconds; give it 60.
    for ((i = 0; i < 240; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.25
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
    local pid
    if pid="$(broker_pid)"; then
        if probe >/dev/null; then
            echo "running (pid $pid) on 127.0.0.1:$port, state in $state"
        else
            echo "running (pid $pid) on 127.0.0.1:$port but not serving clients yet, see $state/server.log"
        fi
        return 0
    fi
    echo "stopped"
    return 3
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) status ;;
    -h | --help | help) sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "$0" ;;
    *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
