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

