#!/usr/bin/env bash
# Latency of the `gema serve` read endpoints over N synthetic mentions (default 10M, spread over
# 7 days) in a throw-away ClickHouse database. Prints p50 / p99 / max per endpoint.
#
#   benches/serve-api.sh [ROWS] [REQUESTS]     (needs scripts/services.sh up; builds gema debug)
#
# With KEEP_DATABASE=1 the database is left for a closer look (drop it yourself).
#
# The last lines time the 6 h and 24 h top-terms query as it was before the term rollups (every
# mention of the window read from `mentions`), sent straight to ClickHouse, for a ratio in one run.
#
# Creates database bench_serve_<n> and topics bench-serve-<n>.* (gema migrate), inserts rows with
# INSERT … SELECT FROM system.numbers inside ClickHouse, runs `gema serve` on a free port, times
# REQUESTS sequential requests per endpoint, then drops the database.
set -euo pipefail
rows="${1:-10000000}"
n="${2:-30}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
cargo build --quiet
gema="${CARGO_TARGET_DIR:-$root/target}/debug/gema"
ch="${GEMA_CLICKHOUSE_URL:-http://127.0.0.1:8123}"
id="$(date +%s)"
export GEMA_CLICKHOUSE_DATABASE="bench_serve_$id" GEMA_KAFKA_TOPIC_PREFIX="bench-serve-$id"
export GEMA_API_TOKEN="bench-token-$id-0123456789"
port=$((20000 + RANDOM % 20000))
pid=""
cleanup() {
  [[ -n "$pid" ]] && kill "$pid" 2>/dev/null || true
  if [[ -n "${KEEP_DATABASE:-}" ]]; then
    echo "Kept database $GEMA_CLICKHOUSE_DATABASE (KEEP_DATABASE is set)"
  else
    curl -s "$ch" --data-binary "DROP DATABASE IF EXISTS $GEMA_CLICKHOUSE_DATABASE" >/dev/null || true
  fi
}
trap cleanup EXIT

"$gema" migrate >/dev/null
echo "Inserting $rows mentions into $GEMA_CLICKHOUSE_DATABASE.mentions ..."
curl -sf "$ch" --data-binary "INSERT INTO $GEMA_CLICKHOUSE_DATABASE.mentions SELECT
 concat('x:', toString(number)), ['x','mastodon','bluesky','reddit'][number % 4 + 1], toString(number),
 toDateTime(toUInt32(now()) - (number * 7919) % 604800), toDateTime(toUInt32(now()) - (number * 7919) % 604800), now(),
 concat('a', toString(number % 200000)), concat('user', toString(number % 200000)), number % 5000,
 'some text about nusapay and kopi', '', ['en','id'][number % 2 + 1], ['negative','neutral','positive'][number % 3 + 1], 0.5, 0.9, 'bench',
 [concat('tag', toString(number % 1000))], emptyArrayString(), emptyArrayString(), [concat('kw', toString(number % 5000)), 'nusapay'],
 [['nusapay','kopikita','arunika-air'][number % 3 + 1]], '', '', 0, 0, 0, 1,
 'fast', '', ['negative','neutral','positive'][number % 3 + 1], 0.5, 0.9, 0
 FROM system.numbers LIMIT $rows"
# Rows written behind the sink's back: recompute the rollups it would have kept current.
start=$(date +%s%N)
"$gema" rollup --since 8d >/dev/null
echo "gema rollup over 8 days: $(( ($(date +%s%N) - start) / 1000000 )) ms"
"$gema" serve --listen "127.0.0.1:$port" >/dev/null 2>&1 &
pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.2; done

echo "$(nproc) CPUs; ClickHouse $(curl -s "$ch" --data-binary 'SELECT version()'); $rows mentions; $n requests each"
# p50 / p99 / max of the "<code> <seconds>" lines on stdin, labelled $1.
summary() {
  sort -k2 -n | awk -v p="$1" '
    { code[NR] = $1; t[NR] = $2 * 1000 }
    END {
      i50 = int(NR * 0.5) + 1; if (i50 > NR) i50 = NR
      i99 = int(NR * 0.99) + 1; if (i99 > NR) i99 = NR
      printf "%-52s p50 %6.0f ms  p99 %6.0f ms  max %6.0f ms  (HTTP %s)\n", p, t[i50], t[i99], t[NR], code[1]
    }'
}

for p in "/api/trends/top?since=1h&limit=20" "/api/timeline?query=nusapay&since=24h&bucket=1h" \
  "/api/timeline?query=nusapay&since=6h&bucket=5m" "/api/timeline?query=nusapay&since=7d&bucket=1h" \
  "/api/share-of-voice?since=24h" "/api/share-of-voice?since=7d" \
  "/api/mentions?since=1h&sentiment=negative&limit=50" "/api/trends/rising?since=1h" \
  "/api/trends/top?since=6h&limit=20" "/api/trends/top?since=24h&limit=20" \
  "/api/trends/top?since=7d&limit=20"; do
  for _ in $(seq "$n"); do
    curl -s -o /dev/null -w '%{http_code} %{time_total}\n' \
      -H "Authorization: Bearer $GEMA_API_TOKEN" "http://127.0.0.1:$port$p"
  done | summary "$p"
done

# The same rankings as gema computed them before the term rollups (migration 0008): every
# mention of the window read from `mentions`, straight to ClickHouse (no API in between).
for hours in 6 24; do
  until=$(date +%s)
  raw="SELECT term, n AS mentions, a AS authors, neg AS negative, neu AS neutral, pos AS positive FROM (
   SELECT term, count() AS n, uniq(author_id) AS a, countIf(sentiment = 'negative') AS neg,
   countIf(sentiment = 'neutral') AS neu, countIf(sentiment = 'positive') AS pos FROM
   $GEMA_CLICKHOUSE_DATABASE.mentions FINAL
   ARRAY JOIN arrayConcat(arrayMap(h -> concat('#', h), hashtags), keywords) AS term
   WHERE created_at >= toDateTime($((until - hours * 3600))) AND created_at < toDateTime($until)
   AND deleted = 0 GROUP BY term) ORDER BY mentions DESC, authors DESC, term LIMIT 20 FORMAT Null"
  for _ in $(seq "$n"); do
    curl -s -o /dev/null -w '%{http_code} %{time_total}\n' "$ch" --data-binary "$raw"
  done | summary "top terms over $hours h from mentions (SQL, before 0008)"
done
