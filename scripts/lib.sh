# Shell helpers shared by scripts/services.sh and the cluster scripts under scripts/cluster/.
# Sourced, not run. Callers set ROOT (the repository) and, to use kafka_jars, KAFKA_LIBS (where the
# broker jars go) before sourcing, and may set LOG_TAG (the prefix of log lines; default "services").

log() { printf '%s: %s\n' "${LOG_TAG:-services}" "$*" >&2; }
die() { log "error: $*"; exit 1; }

need_pkgs() {
  # $@: "command:debian-package" pairs; installs missing packages when root, else says what to install.
  local missing=()
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" = 0 ]; then
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    die "missing packages: ${missing[*]} — install them with: sudo apt-get install ${missing[*]}"
  fi
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

stop_pid() {
  local name=$1 pidfile=$2
  if pid_alive "$pidfile"; then
    local pid; pid="$(cat "$pidfile")"
    log "stopping $name (pid $pid)"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}


# True when a folder holds the jars of the current version of a pom.
#   jars_current <pom> <libs dir>
jars_current() {
  [ -f "$2/.complete" ] && [ "$(cat "$2/.complete")" = "$(sha256sum "$1" | cut -d' ' -f1)" ]
}

# Resolves the runtime jars of a pom under scripts/ into a folder, once per version of that pom.
#   maven_jars <pom> <libs dir> <what, for the log>
maven_jars() {
  local pom=$1 libs=$2 what=$3 sum
  jars_current "$pom" "$libs" && return 0
  sum="$(sha256sum "$pom" | cut -d' ' -f1)"
  need_pkgs java:openjdk-17-jre-headless mvn:maven
  log "resolving the $what jars from Maven Central (${pom#"$ROOT"/})"
  rm -rf "$libs"; mkdir -p "$libs"
  mvn -q -B -f "$pom" dependency:copy-dependencies \
    -DoutputDirectory="$libs" -DincludeScope=runtime >"$libs/../maven.log" 2>&1 \
    || die "maven could not resolve the $what jars; see $libs/../maven.log"
  echo "$sum" >"$libs/.complete"
}

# Whether $KAFKA_LIBS holds the jars of the current scripts/kafka/pom.xml.
kafka_jars_current() { jars_current "$ROOT/scripts/kafka/pom.xml" "$KAFKA_LIBS"; }

# The Kafka broker jars, in $KAFKA_LIBS.
kafka_jars() { maven_jars "$ROOT/scripts/kafka/pom.xml" "$KAFKA_LIBS" "Kafka broker"; }

# The ClickHouse server command.
ch_binary() {
  if command -v clickhouse >/dev/null 2>&1; then echo "clickhouse server"; return; fi
  if command -v clickhouse-server >/dev/null 2>&1; then echo "clickhouse-server"; return; fi
  need_pkgs clickhouse-server:clickhouse-server
  echo "clickhouse-server"
}


# A ClickHouse users file: the passwordless `default` user on 127.0.0.1 only, 4 GB per query.
#   ch_users_xml <file>
ch_users_xml() {
  cat >"$1" <<XML
<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>4000000000</max_memory_usage></default></profiles>
  <users>
    <default>
      <password></password>
      <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </default>
  </users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors>
    <result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time>
  </interval></default></quotas>
</yandex>
XML
}

# A Kafka node's log4j2 config: INFO to <dir>/logs/server.log, request logs at WARN.
#   kafka_log4j <node dir>
kafka_log4j() {
  cat >"$1/log4j2.properties" <<LOG
appender.file.type = File
appender.file.name = file
appender.file.fileName = $1/logs/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.request.name = kafka.request.logger
logger.request.level = WARN
LOG
}
