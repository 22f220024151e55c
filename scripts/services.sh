#!/usr/bin/env bash
# Local Kafka (Apache Kafka 4.x, single-node KRaft) and ClickHouse for gema, on 127.0.0.1 only.
#
#   scripts/services.sh up       install what is missing, start both, wait until healthy (idempotent)
#   scripts/services.sh down     stop both (data is kept)
#   scripts/services.sh status   say what runs, exit 1 if something is not healthy
#   scripts/services.sh logs     tail both logs
#   scripts/services.sh reset    stop both and delete their data
#
# State lives in $GEMA_STATE_DIR (default: <repo>/.gema, git-ignored). Ports (override with env):
#   GEMA_KAFKA_PORT=9092  GEMA_KAFKA_CONTROLLER_PORT=9093  GEMA_CH_HTTP_PORT=8123  GEMA_CH_TCP_PORT=9000
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${GEMA_STATE_DIR:-$ROOT/.gema}"
KAFKA_PORT="${GEMA_KAFKA_PORT:-9092}"
KAFKA_CTRL_PORT="${GEMA_KAFKA_CONTROLLER_PORT:-9093}"
CH_HTTP_PORT="${GEMA_CH_HTTP_PORT:-8123}"
CH_TCP_PORT="${GEMA_CH_TCP_PORT:-9000}"
KAFKA_DIR="$STATE/kafka"
KAFKA_LIBS="$KAFKA_DIR/libs"   # shared with the cluster scripts
CH_DIR="$STATE/clickhouse"

# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

# ---------------------------------------------------------------- Kafka
kafka_config() {
  mkdir -p "$KAFKA_DIR/data" "$KAFKA_DIR/logs"
  cat >"$KAFKA_DIR/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CTRL_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CTRL_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$KAFKA_DIR/data
num.partitions=3
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
log.retention.hours=168
PROPS
  kafka_log4j "$KAFKA_DIR"
}

kafka_java() {
  java -Xmx512m -Xms256m -XX:+UseG1GC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$KAFKA_DIR/log4j2.properties" -cp "$KAFKA_LIBS/*" "$@"
}

kafka_up() {
  if pid_alive "$KAFKA_DIR/pid" && port_open "$KAFKA_PORT"; then
    log "kafka already running on 127.0.0.1:$KAFKA_PORT"; return 0
  fi
  port_open "$KAFKA_PORT" && die "port $KAFKA_PORT is taken by another process; set GEMA_KAFKA_PORT"
  kafka_jars
  kafka_config
  if [ ! -f "$KAFKA_DIR/data/meta.properties" ]; then
    log "formatting Kafka storage in $KAFKA_DIR/data"
    kafka_java kafka.tools.StorageTool format -t "$(kafka_java kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)" \
      -c "$KAFKA_DIR/server.properties" >"$KAFKA_DIR/logs/format.log" 2>&1 \
      || die "formatting Kafka storage failed; see $KAFKA_DIR/logs/format.log"
  fi
  log "starting kafka on 127.0.0.1:$KAFKA_PORT"
  nohup java -Xmx512m -Xms256m -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$KAFKA_DIR/log4j2.properties" -cp "$KAFKA_LIBS/*" \
    kafka.Kafka "$KAFKA_DIR/server.properties" >"$KAFKA_DIR/logs/stdout.log" 2>&1 &
  echo $! >"$KAFKA_DIR/pid"
  for _ in $(seq 1 120); do
    if port_open "$KAFKA_PORT" && grep -q "Kafka Server started\|KafkaRaftServer.*started\|Transitioning from RECOVERY to RUNNING" "$KAFKA_DIR/logs/server.log" 2>/dev/null; then
      log "kafka is up"; return 0
    fi
    pid_alive "$KAFKA_DIR/pid" || die "kafka exited; see $KAFKA_DIR/logs/server.log and stdout.log"
    sleep 0.5
  done
  die "kafka did not become ready in 60 s; see $KAFKA_DIR/logs/server.log"
}

# ---------------------------------------------------------------- ClickHouse
ch_config() {
  mkdir -p "$CH_DIR/data" "$CH_DIR/tmp" "$CH_DIR/logs" "$CH_DIR/user_files" "$CH_DIR/format_schemas"
  cat >"$CH_DIR/config.xml" <<XML
<?xml version="1.0"?>
<yandex>
  <logger>
    <level>warning</level>
    <log>$CH_DIR/logs/server.log</log>
    <errorlog>$CH_DIR/logs/error.log</errorlog>
    <size>100M</size>
    <count>2</count>
  </logger>
  <listen_host>127.0.0.1</listen_host>
  <http_port>$CH_HTTP_PORT</http_port>
  <tcp_port>$CH_TCP_PORT</tcp_port>
  <path>$CH_DIR/data/</path>
  <tmp_path>$CH_DIR/tmp/</tmp_path>
  <user_files_path>$CH_DIR/user_files/</user_files_path>
  <format_schema_path>$CH_DIR/format_schemas/</format_schema_path>
  <timezone>UTC</timezone>
  <mark_cache_size>268435456</mark_cache_size>
  <max_concurrent_queries>100</max_concurrent_queries>
  <users_config>$CH_DIR/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
</yandex>
XML
  ch_users_xml "$CH_DIR/users.xml"
}

ch_up() {
  if pid_alive "$CH_DIR/pid" && curl -fsS "http://127.0.0.1:$CH_HTTP_PORT/ping" >/dev/null 2>&1; then
    log "clickhouse already running on 127.0.0.1:$CH_HTTP_PORT"; return 0
  fi
  port_open "$CH_HTTP_PORT" && die "port $CH_HTTP_PORT is taken by another process; set GEMA_CH_HTTP_PORT"
  need_pkgs curl:curl
  local bin; bin="$(ch_binary)"
  ch_config
  log "starting clickhouse ($bin) on 127.0.0.1:$CH_HTTP_PORT"
  # shellcheck disable=SC2086
  nohup $bin --config-file="$CH_DIR/config.xml" >"$CH_DIR/logs/stdout.log" 2>&1 &
  echo $! >"$CH_DIR/pid"
  for _ in $(seq 1 60); do
    if curl -fsS "http://127.0.0.1:$CH_HTTP_PORT/ping" >/dev/null 2>&1; then
      log "clickhouse is up ($(curl -fsS "http://127.0.0.1:$CH_HTTP_PORT/?query=SELECT%20version()"))"; return 0
    fi
    pid_alive "$CH_DIR/pid" || die "clickhouse exited; see $CH_DIR/logs/error.log and stdout.log"
    sleep 0.5
  done
  die "clickhouse did not answer /ping in 30 s; see $CH_DIR/logs/error.log"
}

status() {
  local ok=0
  if pid_alive "$KAFKA_DIR/pid" && port_open "$KAFKA_PORT"; then
    echo "kafka       up    127.0.0.1:$KAFKA_PORT (pid $(cat "$KAFKA_DIR/pid"))"
  else echo "kafka       down"; ok=1; fi
  if curl -fsS "http://127.0.0.1:$CH_HTTP_PORT/ping" >/dev/null 2>&1; then
    echo "clickhouse  up    http://127.0.0.1:$CH_HTTP_PORT (version $(curl -fsS "http://127.0.0.1:$CH_HTTP_PORT/?query=SELECT%20version()"))"
  else echo "clickhouse  down"; ok=1; fi
  return $ok
}

case "${1:-}" in
  up) mkdir -p "$STATE"; ch_up; kafka_up; status ;;
  down) stop_pid kafka "$KAFKA_DIR/pid"; stop_pid clickhouse "$CH_DIR/pid" ;;
  status) status ;;
  logs) tail -n 50 "$KAFKA_DIR/logs/server.log" "$CH_DIR/logs/error.log" 2>/dev/null || true ;;
  reset) "$0" down; log "deleting $KAFKA_DIR/data and $CH_DIR/data"; rm -rf "$KAFKA_DIR/data" "$CH_DIR/data" ;;
  *) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
