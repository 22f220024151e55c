#!/usr/bin/env bash
# Memory of `gema run` through a 30 s ClickHouse outage, against the same run without one.
#
#   scripts/outage_memory.sh [outage|control]      (needs `scripts/services.sh up` and a build)
#
# Replays 150,000 synthetic mentions (2 h of event time at 100x: about 2,000 a second for 72 s)
# through `gema run` in a namespace of its own; with `outage` (the default) it kills ClickHouse
# with SIGKILL 20 s into the replay and starts it again 30 s later. Prints the process's resident
# memory (RSS, MB) every 10 s for 150 s. BIN picks the binary (default target/debug/gema).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mode="${1:-outage}"
BIN="${BIN:-target/debug/gema}"
STATE="${GEMA_STATE_DIR:-.gema}"
feed="${TMPDIR:-/tmp}/gema-outage-feed.jsonl"
[ -f "$feed" ] || "$BIN" synth --count 150000 --hours 2 --seed 9 -o "$feed" >/dev/null
export GEMA_KAFKA_TOPIC_PREFIX="outage-$(date +%s)" GEMA_CLICKHOUSE_DATABASE=gema_outage
"$BIN" migrate >/dev/null
"$BIN" run --no-sources >/dev/null 2>&1 &
run=$!
trap 'kill -TERM $run 2>/dev/null || true' EXIT
sleep 5
"$BIN" replay --speed 100x "$feed" >/dev/null 2>&1 &
for s in $(seq 1 150); do
  [ $((s % 10)) -eq 0 ] && echo "t=${s}s rss=$(( $(ps -o rss= -p $run) / 1024 )) MB"
  if [ "$mode" = outage ] && [ "$s" -eq 20 ]; then
    kill -9 "$(cat "$STATE/clickhouse/pid")"; echo "t=${s}s clickhouse killed"
  fi
  if [ "$mode" = outage ] && [ "$s" -eq 50 ]; then
    scripts/services.sh up >/dev/null 2>&1; echo "t=${s}s clickhouse started again"
  fi
  sleep 1
done
