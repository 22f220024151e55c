#!/usr/bin/env bash
# Real-browser test of the gema dashboard: headless Debian chromium driven by playwright-core.
#
#   tests/browser/run.sh          (from anywhere; needs the services: scripts/services.sh up)
#
# Idempotent set-up: installs Debian's chromium with apt-get when /usr/bin/chromium is missing
# (as root), `npm ci` here when node_modules is missing or stale, builds gema (debug). Then, in
# its own ClickHouse database and Kafka topic prefix: `gema migrate`, `gema serve` with the
# enrich, sink, trends and router stages in-process, replays one strongly negative mention of a
# tracked query, and the browser must see its alert arrive live, acknowledge it, and find it
# acknowledged through the API; fourteen more negative posts make the replay a small crisis, which
# must show as one incident at the top (summary, top posts by reach) and stay acknowledged once
# acknowledged, also after a reload; a configured source whose service is down shows as failing
# in the Sources panel. At 1440×900 and 390×844 (a phone): no horizontal scroll, headline cards
# with numbers, times in the configured zone (Asia/Jakarta, UTC + 7 h), no console errors.
# Screenshots: tests/browser/out/dashboard-1440.png and dashboard-390.png. Exit 0 = pass.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

if [[ ! -x /usr/bin/chromium ]]; then
  if [[ $(id -u) -eq 0 ]]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium
  else
    echo "Debian's chromium is missing: sudo apt-get install chromium" >&2
    exit 1
  fi
fi
if [[ ! -d "$here/node_modules/playwright-core" || "$here/package-lock.json" -nt "$here/node_modules/.package-lock.json" ]]; then
  (cd "$here" && npm ci --no-audit --no-fund)
fi
cargo build --quiet
gema="${CARGO_TARGET_DIR:-$root/target}/debug/gema"

id="$(date +%s)$RANDOM"
work="$(mktemp -d)"
mkdir -p "$here/out"
export GEMA_CLICKHOUSE_DATABASE="browser_$id"
export GEMA_KAFKA_TOPIC_PREFIX="browser-$id"
export GEMA_KAFKA_PARTITIONS=1
export GEMA_API_TOKEN="browser-test-token-$id"
ch_url="${GEMA_CLICKHOUSE_URL:-http://127.0.0.1:8123}"
port="${GEMA_BROWSER_PORT:-$((20000 + RANDOM % 20000))}"
cat > "$work/gema.toml" <<TOML
state_dir = "$work/state"
[[tracked]]
name = "nusapay"
query = 'nusapay OR @nusapay OR #nusapay*'
[trends]
warmup_buckets = 0
# The page must show every time in this zone (UTC + 7 h), whatever the machine's zone.
[display]
time_zone = "Asia/Jakarta"
# A connector whose service is down: the Sources panel must say so.
[[sources]]
name = "hn-offline"
kind = "hn"
api = "http://127.0.0.1:9"
follow = ["nusapay"]
TOML

serve_pid=""
cleanup() {
  [[ -n "$serve_pid" ]] && kill "$serve_pid" 2>/dev/null && wait "$serve_pid" 2>/dev/null || true
  curl -s "$ch_url" --data-binary "DROP DATABASE IF EXISTS $GEMA_CLICKHOUSE_DATABASE" >/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

"$gema" --config "$work/gema.toml" migrate >/dev/null
"$gema" --config "$work/gema.toml" serve --listen "127.0.0.1:$port" \
  --stages enrich,sink,trends,router --sources >"$here/out/serve.log" 2>&1 &
serve_pid=$!
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break
  sleep 0.2
done
curl -sf "http://127.0.0.1:$port/readyz" >/dev/null || { cat "$here/out/serve.log"; exit 1; }

text="NusaPay is a scam, my refund was stolen and support ignores me. Worst app ever $id"
now="$(date -u +%Y-%m-%dT%H:%M:%S.000Z)"
printf '{"id":"b%s","platform":"x","text":"%s","created_at":"%s","author":{"id":"u%s","handle":"angry%s","followers":250000},"url":"https://x.com/angry/status/%s","lang":"en"}\n' \
  "$id" "$text" "$now" "$id" "$id" "$id" >"$work/feed.jsonl"
# The rest of a small crisis: fourteen more people, the same outage, within the minute (a brand
# gema has no usual count for yet needs 15 negative comments within a minute for an incident).
for i in $(seq 14); do
  printf '{"id":"c%s-%s","platform":"x","text":"NusaPay down again #nusapaydown, my transfer failed and the money is gone. Terrible service %s","created_at":"%s","author":{"id":"v%s-%s","handle":"user%s%s","followers":%s},"url":"https://x.com/u/status/%s%s","lang":"en"}\n' \
    "$id" "$i" "$i" "$now" "$id" "$i" "$i" "$id" "$((i * 1000))" "$id" "$i" >>"$work/feed.jsonl"
done

# The page must be connected before the mention is sent, so the alert arrives live.
ready="$work/ready"
GEMA_URL="http://127.0.0.1:$port" ALERT_TEXT="Worst app ever $id" READY_FILE="$ready" \
  SCREENSHOT_DIR="$here/out" ZONE_OFFSET_H=7 node "$here/dashboard.test.mjs" &
node_pid=$!
for _ in $(seq 150); do
  [[ -f "$ready" ]] && break
  kill -0 "$node_pid" 2>/dev/null || break
  sleep 0.2
done
"$gema" --config "$work/gema.toml" replay --quiet "$work/feed.jsonl" >/dev/null
if wait "$node_pid"; then
  echo "browser test passed; screenshots $here/out/dashboard-1440.png and dashboard-390.png"
else
  echo "browser test FAILED; server log: $here/out/serve.log" >&2
  exit 1
fi
