#!/usr/bin/env bash
# Failover check for the three-node cluster of scripts/cluster/kafka.sh (which must be up), using only
# the Kafka distribution's own tools:
#   1. creates a topic with 3 partitions and replication factor 3,
#   2. produces N keyed messages (acks=all, idempotent producer) at a steady pace,
#   3. SIGKILLs one node part-way through (default: the active controller) and keeps producing,
#   4. restarts that node and waits until it has rejoined and its replicas are in sync,
#   5. reads the topic from the beginning and checks: N records in the log, N distinct messages read,
#      none missing, every key on a single partition, and each key's messages in the order sent.
#
#   scripts/cluster/failover-check.sh [TOPIC]
#
# Env: GEMA_KCHECK_MESSAGES=10000  GEMA_KCHECK_KILL=<node 1..3>  GEMA_KCHECK_KILL_AT=3000 (message number)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
K="$ROOT/scripts/cluster/kafka.sh"
N="${GEMA_KCHECK_MESSAGES:-10000}"
KILL_AT="${GEMA_KCHECK_KILL_AT:-$((N * 3 / 10))}"
TOPIC="${1:-failover-check-$(date +%s)}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

say() { printf 'failover-check: %s\n' "$*" >&2; }
fail() { say "FAIL: $*"; exit 1; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1f", b - a}'; }

"$K" status >/dev/null || fail "the cluster is not up; run scripts/cluster/kafka.sh up"
B="$("$K" bootstrap)"

VICTIM="${GEMA_KCHECK_KILL:-}"
if [ -z "$VICTIM" ]; then
  VICTIM="$("$K" tool org.apache.kafka.tools.MetadataQuorumCommand --bootstrap-server "$B" describe --status \
    | awk '/^LeaderId:/ {print $2}')"
  say "the active controller is node $VICTIM; it is the one to be killed"
fi

"$K" tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$B" --create --topic "$TOPIC" \
  --partitions 3 --replication-factor 3
"$K" tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$B" --describe --topic "$TOPIC"

# N lines "key-K:msg-I" with 64 keys, 200 lines every 0.2 s; at line KILL_AT the victim is killed.
generate() {
  local i
  for ((i = 0; i < N; i++)); do
    printf 'key-%02d:msg-%06d\n' $((i % 64)) "$i"
    if [ "$i" -eq "$KILL_AT" ]; then
      say "message $i sent to the producer: killing node $VICTIM"
      "$K" kill-node "$VICTIM" >&2
      date +%s.%N >"$WORK/killed"
    fi
    [ $((i % 200)) -eq 199 ] && sleep 0.2
  done
}

say "producing $N keyed messages to $TOPIC (acks=all, enable.idempotence=true)"
t0=$(date +%s.%N)
generate | GEMA_KCLUSTER_TOOL_LOG=INFO "$K" tool org.apache.kafka.tools.ConsoleProducer --bootstrap-server "$B" \
  --topic "$TOPIC" --property parse.key=true --property key.separator=: \
  --producer-property acks=all --producer-property enable.idempotence=true \
  --producer-property retries=2147483647 --producer-property delivery.timeout.ms=120000 \
  2>"$WORK/producer.log" || fail "the producer failed; $(tail -5 "$WORK/producer.log")"
t1=$(date +%s.%N)
grep -E '^\s+(acks|enable.idempotence|retries|max.in.flight.requests.per.connection) = ' "$WORK/producer.log" \
  | sort -u | sed 's/^\s*/failover-check: producer config: /' >&2
send_errors="$(grep -c 'Error when sending message' "$WORK/producer.log" || true)"
say "producer done in $(secs "$t0" "$t1") s ($(secs "$(cat "$WORK/killed")" "$t1") s of it after the kill), send errors: $send_errors"
"$K" status || true

say "restarting node $VICTIM"
r0=$SECONDS
"$K" start-node "$VICTIM"
say "node $VICTIM back and in sync in $((SECONDS - r0)) s"
"$K" tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$B" --describe --topic "$TOPIC"

records="$("$K" tool org.apache.kafka.tools.GetOffsetShell --bootstrap-server "$B" --topic "$TOPIC" --time -1 \
  | awk -F: '{s += $3} END {print s}')"
say "records in the log (sum of the end offsets): $records"

"$K" tool org.apache.kafka.tools.consumer.ConsoleConsumer --bootstrap-server "$B" --topic "$TOPIC" \
  --from-beginning --timeout-ms 15000 --max-messages $((N + 1000)) \
  --property print.key=true --property print.partition=true --property key.separator=' ' \
  >"$WORK/read.txt" 2>"$WORK/consumer.log" || true
# Lines: "Partition:P KEY VALUE"
read_n="$(wc -l <"$WORK/read.txt")"
distinct="$(awk '{print $3}' "$WORK/read.txt" | sort -u | wc -l)"
dups=$((read_n - distinct))
missing="$(comm -23 <(for ((i = 0; i < N; i++)); do printf 'msg-%06d\n' "$i"; done) \
  <(awk '{print $3}' "$WORK/read.txt" | sort -u) | wc -l)"
split_keys="$(awk '{print $2, $1}' "$WORK/read.txt" | sort -u | awk '{print $1}' | uniq -d | wc -l)"
out_of_order="$(awk '{k = $2; v = substr($3, 5) + 0; if (k in last && v < last[k]) bad++; last[k] = v} END {print bad + 0}' "$WORK/read.txt")"
say "read $read_n messages: $distinct distinct, $dups duplicate(s), $missing missing, $split_keys key(s) on more than one partition, $out_of_order out of order"

[ "$records" = "$N" ] || fail "the log holds $records records, expected $N"
[ "$read_n" = "$N" ] || fail "read $read_n messages, expected $N"
[ "$dups" = 0 ] && [ "$missing" = 0 ] && [ "$split_keys" = 0 ] && [ "$out_of_order" = 0 ] || fail "see the counts above"
say "PASS"
