#!/usr/bin/env bash
# A three-node Apache Kafka 4.x KRaft cluster for local tests (replication, failover), on 127.0.0.1 only.
# Every node is a combined broker+controller (node ids 1..3, static controller.quorum.voters); topics get
# 3 partitions, replication factor 3 and min.insync.replicas 2 by default, and are never auto-created.
#
#   scripts/cluster/kafka.sh up              start the three nodes (formatting them the first time) and wait
#                                            until 3 brokers are registered; prints the bootstrap string (idempotent)
#   scripts/cluster/kafka.sh down            stop all nodes (data is kept)
#   scripts/cluster/kafka.sh status          one line per node, exit 1 if any is down
#   scripts/cluster/kafka.sh stop-node N     stop node N gracefully (SIGTERM: controlled shutdown, never SIGKILL)
#   scripts/cluster/kafka.sh kill-node N     SIGKILL node N (crash test)
#   scripts/cluster/kafka.sh start-node N    start node N and wait until it has rejoined and its replicas are in sync
#   scripts/cluster/kafka.sh bootstrap       print the bootstrap string
#   scripts/cluster/kafka.sh reset           stop all nodes and delete their data
#   scripts/cluster/kafka.sh logs [N]        tail the node logs
#   scripts/cluster/kafka.sh tool CLASS ...  run a Kafka tool from the jars, e.g.
#                                            tool org.apache.kafka.tools.TopicCommand --bootstrap-server B --list
#
# State lives in $GEMA_STATE_DIR/kafka-cluster/node{1,2,3} (default: <repo>/.gema, git-ignored). Env:
#   GEMA_KCLUSTER_PORT_BASE=19092  brokers on BASE..BASE+2, controllers on BASE+100..BASE+102
#   GEMA_KCLUSTER_HEAP=384m        heap of each node      GEMA_KCLUSTER_JAVA_OPTS   more JVM options for the nodes
#   GEMA_KCLUSTER_WAIT=180         seconds to wait for a start, GEMA_KCLUSTER_STOP_WAIT=90 for a stop
#   GEMA_KAFKA_LIBS=DIR            use these Kafka jars as they are (default: resolve them into $GEMA_STATE_DIR/kafka/libs)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STATE="${GEMA_STATE_DIR:-$ROOT/.gema}"
CDIR="$STATE/kafka-cluster"
KAFKA_LIBS="${GEMA_KAFKA_LIBS:-$STATE/kafka/libs}"   # the same jars as scripts/services.sh
PORT_BASE="${GEMA_KCLUSTER_PORT_BASE:-19092}"
HEAP="${GEMA_KCLUSTER_HEAP:-384m}"
WAIT_S="${GEMA_KCLUSTER_WAIT:-180}"
NODES=(1 2 3)
LOG_TAG=kafka-cluster

# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

broker_port() { echo $((PORT_BASE + $1 - 1)); }
ctrl_port() { echo $((PORT_BASE + 100 + $1 - 1)); }
node_dir() { echo "$CDIR/node$1"; }
bootstrap() {
  local n out=()
  for n in "${NODES[@]}"; do out+=("127.0.0.1:$(broker_port "$n")"); done
  (IFS=,; echo "${out[*]}")
}
voters() {
  local n out=()
  for n in "${NODES[@]}"; do out+=("$n@127.0.0.1:$(ctrl_port "$n")"); done
  (IFS=,; echo "${out[*]}")
}
node_arg() {
  case "${1:-}" in 1|2|3) ;; *) die "expected a node number 1, 2 or 3, got '${1:-}'" ;; esac
}
node_up() { pid_alive "$(node_dir "$1")/pid" && port_open "$(broker_port "$1")"; }
rss_mib() { awk '/^VmRSS/ {printf "%d", $2 / 1024}' "/proc/$1/status" 2>/dev/null || echo "?"; }

# ---------------------------------------------------------------- jars and tools
jars() {
  if [ -n "${GEMA_KAFKA_LIBS:-}" ]; then
    ls "$KAFKA_LIBS"/kafka_2.13-*.jar >/dev/null 2>&1 || die "GEMA_KAFKA_LIBS=$KAFKA_LIBS holds no kafka_2.13 jar"
  elif ! kafka_jars_current; then
    # Resolving deletes the jar folder first; never do that under a running broker.
    local running=() n
    pid_alive "$STATE/kafka/pid" && running+=("the single-node kafka of scripts/services.sh")
    for n in "${NODES[@]}"; do pid_alive "$(node_dir "$n")/pid" && running+=("node $n"); done
    [ ${#running[@]} -eq 0 ] || die "the Kafka jars in $KAFKA_LIBS are out of date but ${running[*]} runs from them; stop it first"
    kafka_jars
  fi
  ls "$KAFKA_LIBS"/kafka-tools-[0-9]*.jar >/dev/null 2>&1 \
    || die "$KAFKA_LIBS has no kafka-tools jar (scripts/kafka/pom.xml lists it); the cluster checks need it"
}

tools_log4j() {
  local tmp="$CDIR/tools-log4j2.properties.$BASHPID"   # written aside, then renamed: tools may run in parallel
  mkdir -p "$CDIR"
  cat >"$tmp" <<'LOG'
appender.err.type = Console
appender.err.name = err
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = ${env:GEMA_KCLUSTER_TOOL_LOG:-WARN}
rootLogger.appenderRef.err.ref = err
LOG
  mv -f "$tmp" "$CDIR/tools-log4j2.properties"
}

# A Kafka command-line tool (class name and arguments) in a small, quick-starting JVM; it logs to stderr
# at level $GEMA_KCLUSTER_TOOL_LOG (default WARN).
tool() {
  tools_log4j
  java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$CDIR/tools-log4j2.properties" -cp "$KAFKA_LIBS/*" "$@"
}

# Ids of the registered, unfenced brokers, one a line.
live_brokers() {
  tool org.apache.kafka.tools.ClusterTool list-endpoints --bootstrap-server "$(bootstrap)" 2>/dev/null \
    | awk 'NR > 1 && $1 ~ /^[0-9]+$/ {print $1}' | sort -u
}

# How many partitions have fewer in-sync replicas than replicas; "?" when the cluster does not answer.
under_replicated() {
  local out
  out="$(tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$(bootstrap)" --describe \
    --under-replicated-partitions 2>/dev/null)" || { echo "?"; return 0; }
  printf '%s\n' "$out" | grep -c 'Partition:' || true
}

# ---------------------------------------------------------------- nodes
node_config() {
  local n=$1 dir; dir="$(node_dir "$1")"
  mkdir -p "$dir/data" "$dir/logs"
  cat >"$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=$n
controller.quorum.voters=$(voters)
listeners=PLAINTEXT://127.0.0.1:$(broker_port "$n"),CONTROLLER://127.0.0.1:$(ctrl_port "$n")
advertised.listeners=PLAINTEXT://127.0.0.1:$(broker_port "$n")
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/data
num.partitions=3
default.replication.factor=3
min.insync.replicas=2
offsets.topic.replication.factor=3
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=3
share.coordinator.state.topic.min.isr=2
share.coordinator.state.topic.num.partitions=10
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
unclean.leader.election.enable=false
log.retention.hours=168
# two cores are enough for three of these
num.network.threads=2
num.io.threads=4
background.threads=4
PROPS
  kafka_log4j "$dir"
}

# The cluster id all three nodes are formatted with: kept in $CDIR/cluster.id, else read back from a
# formatted node, else a new one.
cluster_id() {
  if [ ! -s "$CDIR/cluster.id" ]; then
    local n id=""
    for n in "${NODES[@]}"; do
      id="$(sed -n 's/^cluster.id=//p' "$(node_dir "$n")/data/meta.properties" 2>/dev/null || true)"
      [ -n "$id" ] && break
    done
    [ -n "$id" ] || id="$(tool kafka.tools.StorageTool random-uuid | tail -1)"
    mkdir -p "$CDIR"; echo "$id" >"$CDIR/cluster.id"
  fi
  cat "$CDIR/cluster.id"
}

format_nodes() {
  local n dir id pids=() todo=()
  for n in "${NODES[@]}"; do
    [ -f "$(node_dir "$n")/data/meta.properties" ] || todo+=("$n")
  done
  [ ${#todo[@]} -eq 0 ] && return 0
  id="$(cluster_id)"
  log "formatting node(s) ${todo[*]} with cluster id $id"
  for n in "${todo[@]}"; do
    dir="$(node_dir "$n")"
    tool kafka.tools.StorageTool format -t "$id" -c "$dir/server.properties" >"$dir/logs/format.log" 2>&1 &
    pids+=("$!")
  done
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || die "formatting node ${todo[$i]} failed; see $(node_dir "${todo[$i]}")/logs/format.log"
  done
}

# Starts node $1 unless it runs; sets LAUNCH_OFFSET to the byte offset of its server.log at the start
# (empty when it was running already).
launch() {
  local n=$1 dir; dir="$(node_dir "$1")"
  LAUNCH_OFFSET=""
  if node_up "$n"; then log "node $n already runs (pid $(cat "$dir/pid"))"; return 0; fi
  if pid_alive "$dir/pid"; then
    die "node $n (pid $(cat "$dir/pid")) runs but does not listen on $(broker_port "$n"); see $dir/logs/server.log, or stop-node $n"
  fi
  local p
  for p in "$(broker_port "$n")" "$(ctrl_port "$n")"; do
    port_open "$p" && die "port $p (node $n) is taken by another process; set GEMA_KCLUSTER_PORT_BASE"
  done
  rm -f "$dir/pid"
  LAUNCH_OFFSET="$(stat -c %s "$dir/logs/server.log" 2>/dev/null || echo 0)"
  log "starting node $n: broker 127.0.0.1:$(broker_port "$n"), controller 127.0.0.1:$(ctrl_port "$n")"
  # shellcheck disable=SC2086
  nohup java -Xms128m -Xmx"$HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError \
    -Djava.awt.headless=true -Dlog4j2.configurationFile="$dir/log4j2.properties" ${GEMA_KCLUSTER_JAVA_OPTS:-} \
    -cp "$KAFKA_LIBS/*" kafka.Kafka "$dir/server.properties" >"$dir/logs/stdout.log" 2>&1 &
  echo $! >"$dir/pid"
}

# Waits until every node in "$@" (pairs n:offset; an empty offset means it was already running) has
# logged its start since that offset and is among the registered, unfenced brokers.
wait_started() {
  local deadline=$((SECONDS + WAIT_S)) pair n off dir pending
  while :; do
    pending=()
    for pair in "$@"; do
      n="${pair%%:*}"; off="${pair#*:}"; dir="$(node_dir "$n")"
      pid_alive "$dir/pid" || die "node $n exited; see $dir/logs/server.log and $dir/logs/stdout.log"
      if ! port_open "$(broker_port "$n")"; then pending+=("$n"); continue; fi
      if [ -n "$off" ] && ! tail -c +"$((off + 1))" "$dir/logs/server.log" 2>/dev/null | grep -q 'Kafka Server started'; then
        pending+=("$n")
      fi
    done
    if [ ${#pending[@]} -eq 0 ]; then
      local live; live=" $(live_brokers | tr '\n' ' ')"
      for pair in "$@"; do
        case "$live" in *" ${pair%%:*} "*) ;; *) pending+=("${pair%%:*}") ;; esac
      done
      [ ${#pending[@]} -eq 0 ] && return 0
      pending=("the registration of node(s) ${pending[*]}; registered:${live% }")
    fi
    [ "$SECONDS" -lt "$deadline" ] || die "the cluster did not come up in ${WAIT_S} s (waiting on ${pending[*]}); see $CDIR/node*/logs/server.log"
    sleep 1
  done
}

wait_in_sync() {
  local deadline=$((SECONDS + WAIT_S)) urp
  while :; do
    urp="$(under_replicated)"
    [ "$urp" = 0 ] && { log "all partitions are fully replicated"; return 0; }
    [ "$SECONDS" -lt "$deadline" ] || { log "warning: $urp partition(s) still under-replicated after ${WAIT_S} s"; return 0; }
    sleep 1
  done
}

running_nodes() {
  local n
  for n in "${NODES[@]}"; do pid_alive "$(node_dir "$n")/pid" && echo "$n"; done
  return 0
}

# SIGTERM (a controlled shutdown) to the given nodes at once, then wait; "force" SIGKILLs what is left
# after the wait. A broker's controlled shutdown must be approved by the active controller, so a node
# that runs alone (no quorum of 2 of the 3 controllers) cannot finish it: Kafka waits 5 minutes. Hence
# `down` stops the nodes together, while their controllers are still there, and waits briefly for a
# node left alone.
stop_nodes() {
  local force=$1; shift
  local n dir pids=() names=() wait_s="${GEMA_KCLUSTER_STOP_WAIT:-90}"
  if [ "$(running_nodes | wc -l)" -eq 1 ] && [ -z "${GEMA_KCLUSTER_STOP_WAIT:-}" ]; then
    wait_s=15
    log "node $(running_nodes) runs alone: without a controller quorum it cannot finish a controlled shutdown; SIGKILL after ${wait_s} s"
  fi
  for n in "$@"; do
    dir="$(node_dir "$n")"
    if pid_alive "$dir/pid"; then
      log "stopping node $n (pid $(cat "$dir/pid"))"
      kill -TERM "$(cat "$dir/pid")" 2>/dev/null || true
      pids+=("$(cat "$dir/pid")"); names+=("$n")
    else
      rm -f "$dir/pid"
    fi
  done
  [ ${#pids[@]} -eq 0 ] && return 0
  local deadline=$((SECONDS + wait_s)) left i
  while :; do
    left=()
    for i in "${!pids[@]}"; do kill -0 "${pids[$i]}" 2>/dev/null && left+=("$i"); done
    [ ${#left[@]} -eq 0 ] && break
    if [ "$SECONDS" -ge "$deadline" ]; then
      for i in "${left[@]}"; do
        if [ "$force" = force ]; then
          log "node ${names[$i]} did not stop in time; sending SIGKILL"
          kill -KILL "${pids[$i]}" 2>/dev/null || true
        else
          die "node ${names[$i]} (pid ${pids[$i]}) is still shutting down; see $(node_dir "${names[$i]}")/logs/server.log (kill-node ${names[$i]} ends it at once)"
        fi
      done
      sleep 0.5; break
    fi
    sleep 0.5
  done
  for n in "${names[@]}"; do rm -f "$(node_dir "$n")/pid"; done
}

# ---------------------------------------------------------------- commands
up() {
  need_pkgs java:openjdk-17-jre-headless
  jars
  local n p t0=$SECONDS started=()
  for n in "${NODES[@]}"; do   # before starting anything: the ports of the nodes to start must be free
    pid_alive "$(node_dir "$n")/pid" && continue
    for p in "$(broker_port "$n")" "$(ctrl_port "$n")"; do
      port_open "$p" && die "port $p (node $n) is taken by another process; set GEMA_KCLUSTER_PORT_BASE"
    done
  done
  for n in "${NODES[@]}"; do configure_node "$n"; done
  format_nodes
  for n in "${NODES[@]}"; do launch "$n"; started+=("$n:$LAUNCH_OFFSET"); done
  wait_started "${started[@]}"
  log "cluster is up: 3 brokers registered ($((SECONDS - t0)) s)"
  bootstrap
}

# Writes the node's configuration unless the node runs (its running configuration stays as it is).
configure_node() { pid_alive "$(node_dir "$1")/pid" || node_config "$1"; }

start_node() {
  local n=$1
  jars
  configure_node "$n"
  [ -f "$(node_dir "$n")/data/meta.properties" ] || format_nodes
  local t0=$SECONDS
  launch "$n"
  wait_started "$n:$LAUNCH_OFFSET"
  local down; down="$(comm -23 <(printf '%s\n' "${NODES[@]}") <(running_nodes) | tr '\n' ' ')"
  if [ -n "$down" ]; then
    log "node $n has rejoined ($((SECONDS - t0)) s); node(s) ${down}are down, so partitions stay under-replicated"
    return 0
  fi
  log "node $n has rejoined ($((SECONDS - t0)) s); waiting for its replicas to catch up"
  wait_in_sync
}

kill_node() {
  local n=$1 dir pid; dir="$(node_dir "$1")"
  pid_alive "$dir/pid" || { log "node $n is not running"; rm -f "$dir/pid"; return 0; }
  pid="$(cat "$dir/pid")"
  log "killing node $n (pid $pid) with SIGKILL"
  kill -KILL "$pid"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  rm -f "$dir/pid"
}

status() {
  local n dir ok=0
  for n in "${NODES[@]}"; do
    dir="$(node_dir "$n")"
    if node_up "$n"; then
      local pid; pid="$(cat "$dir/pid")"
      printf 'node%s  up    broker 127.0.0.1:%s  controller 127.0.0.1:%s  (pid %s, rss %s MiB)\n' \
        "$n" "$(broker_port "$n")" "$(ctrl_port "$n")" "$pid" "$(rss_mib "$pid")"
    elif pid_alive "$dir/pid"; then
      printf 'node%s  starting (pid %s, broker port %s not open yet)\n' "$n" "$(cat "$dir/pid")" "$(broker_port "$n")"; ok=1
    else
      printf 'node%s  down\n' "$n"; ok=1
    fi
  done
  return $ok
}

case "${1:-}" in
  up) up ;;
  down) stop_nodes force "${NODES[@]}" ;;
  status) status ;;
  stop-node)
    node_arg "${2:-}"
    if pid_alive "$(node_dir "$2")/pid" && [ "$(running_nodes | grep -cvx "$2")" -eq 0 ]; then
      die "node $2 is the only node running: its controlled shutdown needs the controller quorum (2 of 3 nodes) and Kafka would wait 5 minutes for it; use down (SIGKILL after 15 s) or kill-node $2"
    fi
    stop_nodes graceful "$2" ;;
  kill-node) node_arg "${2:-}"; kill_node "$2" ;;
  start-node) node_arg "${2:-}"; start_node "$2" ;;
  bootstrap) bootstrap ;;
  reset)
    stop_nodes force "${NODES[@]}"
    log "deleting $CDIR"; rm -rf "$CDIR" ;;
  logs)
    if [ -n "${2:-}" ]; then node_arg "$2"; tail -n 50 "$(node_dir "$2")/logs/server.log"
    else for n in "${NODES[@]}"; do tail -n 20 "$(node_dir "$n")/logs/server.log" 2>/dev/null || true; done; fi ;;
  tool) shift; [ $# -gt 0 ] || die "tool needs a class name"; jars; tool "$@" ;;
  *) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
