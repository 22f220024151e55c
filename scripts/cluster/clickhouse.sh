#!/usr/bin/env bash
# A local replicated ClickHouse for gema: one standalone ZooKeeper and two clickhouse-server
# processes (one shard, two replicas, cluster `gema_cluster`), all on 127.0.0.1.
#
#   scripts/cluster/clickhouse.sh up               install what is missing, start ZooKeeper and both
#                                                  replicas, wait until both see ZooKeeper (idempotent)
#   scripts/cluster/clickhouse.sh down             stop both replicas and ZooKeeper (data is kept)
#   scripts/cluster/clickhouse.sh reset            stop everything and delete the data
#   scripts/cluster/clickhouse.sh status           say what runs, exit 1 if something is not healthy
#   scripts/cluster/clickhouse.sh logs             tail the logs
#   scripts/cluster/clickhouse.sh stop-replica N   stop replica N (1 or 2) cleanly (SIGTERM)
#   scripts/cluster/clickhouse.sh kill-replica N   kill replica N at once (SIGKILL, a crash); once started
#                                                  again its tables replicate only after ZooKeeper
#                                                  expired the dead session (up to the session timeout
#                                                  plus 10 s; "appears to be already active" in its log)
#   scripts/cluster/clickhouse.sh start-replica N  start replica N again (and ZooKeeper if it is down)
#
# State lives in $GEMA_STATE_DIR (default: <repo>/.gema, git-ignored): zookeeper/ and
# ch-cluster/replica1, ch-cluster/replica2. Ports (override with env):
#   GEMA_ZK_PORT=12181
#   GEMA_CH1_HTTP_PORT=18123  GEMA_CH1_TCP_PORT=19000  GEMA_CH1_INTERSERVER_PORT=19009
#   GEMA_CH2_HTTP_PORT=18124  GEMA_CH2_TCP_PORT=19001  GEMA_CH2_INTERSERVER_PORT=19010
# GEMA_ZK_HEAP=128m sets ZooKeeper's Java heap, GEMA_ZK_SESSION_TIMEOUT_MS=10000 the replicas'
# ZooKeeper session timeout. Each replica's config has the macros {shard}=01 and {replica}=r1 / r2
# for ReplicatedMergeTree paths, and distributed DDL (ON CLUSTER) enabled.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STATE="${GEMA_STATE_DIR:-$ROOT/.gema}"
ZK_PORT="${GEMA_ZK_PORT:-12181}"
ZK_HEAP="${GEMA_ZK_HEAP:-128m}"
ZK_SESSION_MS="${GEMA_ZK_SESSION_TIMEOUT_MS:-10000}"
ZK_DIR="$STATE/zookeeper"
ZK_LIBS="$ZK_DIR/libs"
CLUSTER_DIR="$STATE/ch-cluster"
CLUSTER=gema_cluster
HTTP_PORTS=("${GEMA_CH1_HTTP_PORT:-18123}" "${GEMA_CH2_HTTP_PORT:-18124}")
TCP_PORTS=("${GEMA_CH1_TCP_PORT:-19000}" "${GEMA_CH2_TCP_PORT:-19001}")
INTERSERVER_PORTS=("${GEMA_CH1_INTERSERVER_PORT:-19009}" "${GEMA_CH2_INTERSERVER_PORT:-19010}")

# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

# ---------------------------------------------------------------- ZooKeeper
zk_ok() {
  # The four-letter word `srvr` names the mode only once the server serves requests (`ruok`
  # answers imok even when the server failed to start behind its listener).
  (exec 3<>"/dev/tcp/127.0.0.1/$ZK_PORT" && printf srvr >&3 && timeout 2 cat <&3) 2>/dev/null \
    | grep -q '^Mode: standalone'
}

zk_config() {
  mkdir -p "$ZK_DIR/data" "$ZK_DIR/logs"
  cat >"$ZK_DIR/zoo.cfg" <<CFG
tickTime=2000
initLimit=10
syncLimit=5
dataDir=$ZK_DIR/data
clientPort=$ZK_PORT
clientPortAddress=127.0.0.1
maxClientCnxns=100
admin.enableServer=false
4lw.commands.whitelist=srvr,mntr,stat,ruok
autopurge.snapRetainCount=3
autopurge.purgeInterval=1
CFG
}

zk_up() {
  if pid_alive "$ZK_DIR/pid" && zk_ok; then
    log "zookeeper already running on 127.0.0.1:$ZK_PORT"; return 0
  fi
  port_open "$ZK_PORT" && die "port $ZK_PORT is taken by another process; set GEMA_ZK_PORT"
  maven_jars "$ROOT/scripts/zookeeper/pom.xml" "$ZK_LIBS" "ZooKeeper"
  zk_config
  log "starting zookeeper on 127.0.0.1:$ZK_PORT"
  nohup java "-Xmx$ZK_HEAP" -Xms32m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
    -Dorg.slf4j.simpleLogger.defaultLogLevel=warn -Dorg.slf4j.simpleLogger.showDateTime=true \
    -Dzookeeper.jmx.log4j.disable=true -cp "$ZK_LIBS/*" \
    org.apache.zookeeper.server.ZooKeeperServerMain "$ZK_DIR/zoo.cfg" >"$ZK_DIR/logs/server.log" 2>&1 &
  echo $! >"$ZK_DIR/pid"
  for _ in $(seq 1 60); do
    if zk_ok; then log "zookeeper is up"; return 0; fi
    pid_alive "$ZK_DIR/pid" || die "zookeeper exited; see $ZK_DIR/logs/server.log"
    sleep 0.5
  done
  die "zookeeper did not serve requests in 30 s; see $ZK_DIR/logs/server.log"
}

# ---------------------------------------------------------------- ClickHouse replicas
replica_dir() { echo "$CLUSTER_DIR/replica$1"; }

check_n() {
  case "${1:-}" in 1|2) ;; *) die "which replica? give 1 or 2" ;; esac
}

ch_query() {
  # ch_query N SQL: runs SQL on replica N over HTTP and prints the answer.
  curl -fsS "http://127.0.0.1:${HTTP_PORTS[$1-1]}/" --data-binary "$2"
}

ch_ping() { curl -fsS "http://127.0.0.1:${HTTP_PORTS[$1-1]}/ping" >/dev/null 2>&1; }

replica_config() {
  local n=$1 dir; dir="$(replica_dir "$n")"
  mkdir -p "$dir/data" "$dir/tmp" "$dir/logs" "$dir/user_files" "$dir/format_schemas"
  cat >"$dir/config.xml" <<XML
<?xml version="1.0"?>
<yandex>
  <logger>
    <level>warning</level>
    <log>$dir/logs/server.log</log>
    <errorlog>$dir/logs/error.log</errorlog>
    <size>100M</size>
    <count>2</count>
  </logger>
  <listen_host>127.0.0.1</listen_host>
  <http_port>${HTTP_PORTS[$n-1]}</http_port>
  <tcp_port>${TCP_PORTS[$n-1]}</tcp_port>
  <interserver_http_port>${INTERSERVER_PORTS[$n-1]}</interserver_http_port>
  <interserver_http_host>127.0.0.1</interserver_http_host>
  <path>$dir/data/</path>
  <tmp_path>$dir/tmp/</tmp_path>
  <user_files_path>$dir/user_files/</user_files_path>
  <format_schema_path>$dir/format_schemas/</format_schema_path>
  <timezone>UTC</timezone>
  <mark_cache_size>268435456</mark_cache_size>
  <uncompressed_cache_size>268435456</uncompressed_cache_size>
  <max_concurrent_queries>100</max_concurrent_queries>
  <users_config>$dir/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>

  <zookeeper>
    <node><host>127.0.0.1</host><port>$ZK_PORT</port></node>
    <session_timeout_ms>$ZK_SESSION_MS</session_timeout_ms>
    <operation_timeout_ms>10000</operation_timeout_ms>
  </zookeeper>

  <remote_servers>
    <$CLUSTER>
      <shard>
        <internal_replication>true</internal_replication>
        <replica><host>127.0.0.1</host><port>${TCP_PORTS[0]}</port></replica>
        <replica><host>127.0.0.1</host><port>${TCP_PORTS[1]}</port></replica>
      </shard>
    </$CLUSTER>
  </remote_servers>

  <macros>
    <cluster>$CLUSTER</cluster>
    <shard>01</shard>
    <replica>r$n</replica>
  </macros>

  <distributed_ddl>
    <path>/clickhouse/task_queue/ddl</path>
  </distributed_ddl>
</yandex>
XML
  ch_users_xml "$dir/users.xml"
}

replica_start() {
  # Starts replica N without waiting for it.
  local n=$1 dir bin; dir="$(replica_dir "$n")"
  if pid_alive "$dir/pid" && ch_ping "$n"; then
    log "replica $n already running on 127.0.0.1:${HTTP_PORTS[$n-1]}"; return 0
  fi
  local port
  for port in "${HTTP_PORTS[$n-1]}" "${TCP_PORTS[$n-1]}" "${INTERSERVER_PORTS[$n-1]}"; do
    port_open "$port" && die "port $port of replica $n is taken by another process; see GEMA_CH${n}_*_PORT"
  done
  bin="$(ch_binary)"
  replica_config "$n"
  log "starting clickhouse replica $n on 127.0.0.1:${HTTP_PORTS[$n-1]} (tcp ${TCP_PORTS[$n-1]})"
  # shellcheck disable=SC2086
  nohup $bin --config-file="$dir/config.xml" >"$dir/logs/stdout.log" 2>&1 &
  echo $! >"$dir/pid"
}

replica_wait() {
  # Waits until replica N answers /ping and reads ZooKeeper's root.
  local n=$1 dir; dir="$(replica_dir "$n")"
  for _ in $(seq 1 120); do
    if ch_ping "$n" && ch_query "$n" "SELECT count() FROM system.zookeeper WHERE path = '/'" >/dev/null 2>&1; then
      log "replica $n is up ($(ch_query "$n" 'SELECT version()'), sees zookeeper)"; return 0
    fi
    pid_alive "$dir/pid" || die "replica $n exited; see $dir/logs/error.log and stdout.log"
    sleep 0.5
  done
  die "replica $n did not answer /ping and read zookeeper in 60 s; see $dir/logs/error.log"
}

replica_stop() {
  stop_pid "clickhouse replica $1" "$(replica_dir "$1")/pid"
}

replica_kill() {
  local pidfile; pidfile="$(replica_dir "$1")/pid"
  if pid_alive "$pidfile"; then
    log "killing clickhouse replica $1 (pid $(cat "$pidfile"), SIGKILL)"
    kill -9 "$(cat "$pidfile")" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

# ---------------------------------------------------------------- commands
status() {
  local ok=0 n
  if pid_alive "$ZK_DIR/pid" && zk_ok; then
    echo "zookeeper   up    127.0.0.1:$ZK_PORT (pid $(cat "$ZK_DIR/pid"))"
  else echo "zookeeper   down"; ok=1; fi
  for n in 1 2; do
    if ch_ping "$n"; then
      local zk=no
      ch_query "$n" "SELECT count() FROM system.zookeeper WHERE path = '/'" >/dev/null 2>&1 && zk=yes
      echo "replica $n   up    http://127.0.0.1:${HTTP_PORTS[$n-1]} tcp ${TCP_PORTS[$n-1]}" \
        "(version $(ch_query "$n" 'SELECT version()'), pid $(cat "$(replica_dir "$n")/pid" 2>/dev/null || echo '?'), zookeeper $zk)"
      [ $zk = yes ] || ok=1
    else echo "replica $n   down"; ok=1; fi
  done
  return $ok
}

up() {
  mkdir -p "$STATE"
  need_pkgs curl:curl
  zk_up
  replica_start 1
  replica_start 2
  replica_wait 1
  replica_wait 2
  status
}

down() {
  replica_stop 1
  replica_stop 2
  stop_pid zookeeper "$ZK_DIR/pid"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  reset) down; log "deleting $ZK_DIR/data and $CLUSTER_DIR"; rm -rf "$ZK_DIR/data" "$CLUSTER_DIR" ;;
  status) status ;;
  logs) tail -n 30 "$ZK_DIR/logs/server.log" "$CLUSTER_DIR"/replica*/logs/error.log 2>/dev/null || true ;;
  stop-replica) check_n "${2:-}"; replica_stop "$2" ;;
  kill-replica) check_n "${2:-}"; replica_kill "$2" ;;
  start-replica) check_n "${2:-}"; need_pkgs curl:curl; zk_up; replica_start "$2"; replica_wait "$2" ;;
  *) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 2 ;;
esac
