#!/usr/bin/env bash
# Peak memory (RSS high-water mark) of each stage run as its own process over N mentions
# (default 1,000,000): `gema enrich`, `gema trends-stage`, `gema router` and `gema sink` read
# a synthetic feed of N mentions over 24 hours replayed at full speed into a throw-away topic
# prefix and ClickHouse database; once every mention is stored and every stage has been idle
# for 5 s, prints each stage's VmHWM from /proc and how long the run took, then stops the stages
# (SIGTERM: they drain and commit) and drops the database.
#
#   benches/stage-rss.sh [N]     (needs scripts/services.sh up; builds gema release)
#
# VERBOSE=1 prints each stage's CPU ticks every 5 s while waiting.
set -euo pipefail
n="${1:-1000000}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
cargo build --release --quiet
gema="${CARGO_TARGET_DIR:-$root/target}/release/gema"
ch="${GEMA_CLICKHOUSE_URL:-http://127.0.0.1:8123}"
id="$(date +%s)"
export GEMA_CLICKHOUSE_DATABASE="bench_rss_$id" GEMA_KAFKA_TOPIC_PREFIX="bench-rss-$id"
work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  curl -s "$ch" --data-binary "DROP DATABASE IF EXISTS $GEMA_CLICKHOUSE_DATABASE" >/dev/null || true
  rm -rf "$work" .gema/state/"$GEMA_KAFKA_TOPIC_PREFIX"-*
}
trap cleanup EXIT

"$gema" migrate >/dev/null
echo "Generating $n mentions over 24 h ..."
"$gema" synth --count "$n" --hours 24 --start "$(date -u -d '25 hours ago' +%Y-%m-%dT%H:00:00Z)" \
  --out "$work/feed.jsonl" >/dev/null
declare -A stage_pid
for stage in enrich trends-stage router sink; do
  "$gema" "$stage" >"$work/$stage.log" 2>&1 &
  stage_pid[$stage]=$!
  pids+=("$!")
done
start=$(date +%s)
"$gema" replay --quiet "$work/feed.jsonl"
echo "Replayed in $(($(date +%s) - start)) s; waiting for the sink ..."
stored=0
while :; do
  stored=$(curl -s "$ch" --data-binary "SELECT count() FROM $GEMA_CLICKHOUSE_DATABASE.mentions")
  [[ "$stored" -ge "$n" ]] && break
  for stage in "${!stage_pid[@]}"; do
    kill -0 "${stage_pid[$stage]}" 2>/dev/null || { echo "$stage exited:"; tail -5 "$work/$stage.log"; exit 1; }
  done
  sleep 2
done
echo "$stored rows stored $(($(date +%s) - start)) s after the replay began; waiting for the other stages ..."
# CPU ticks (utime + stime, 1/100 s) of every stage: idle once all four together use under 12 %
# of a core for 5 s. Idle stages still wake for their timers and Kafka clients: about 35 ticks
# in 5 s together, most of them the sink's four tables (measured with VERBOSE=1).
ticks() {
  local t=0
  for p in "${pids[@]}"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
  echo "$t"
}
before=$(ticks)
idle=0
for _ in $(seq 60); do
  sleep 5
  now=$(ticks)
  if [[ -n "${VERBOSE:-}" ]]; then
    for stage in enrich trends-stage router sink; do
      printf '%s=%s ' "$stage" "$(awk '{print $14 + $15}' "/proc/${stage_pid[$stage]}/stat")"
    done
    echo
  fi
  idle=$(( now - before <= 60 ))
  before=$now
  (( idle )) && break
done
if (( idle )); then
  echo "Every stage idle $(($(date +%s) - start)) s after the replay began."
else
  echo "The stages were still busy 300 s after the sink stored everything; measuring anyway."
fi
echo "$(nproc) CPUs; $n mentions; peak RSS per stage process (VmHWM):"
for stage in enrich trends-stage router sink; do
  hwm=$(awk '/VmHWM/ {print $2}' "/proc/${stage_pid[$stage]}/status")
  printf '  %-13s %6d MiB\n' "$stage" $((hwm / 1024))
done
