#!/usr/bin/env python3
"""Applies gema's ClickHouse migrations (schemas/clickhouse/*.sql, as src/store/migrate.rs does)
to a modern ClickHouse engine in process (PyPI `chdb-core`), then runs the statements that keep one
row per mention key and an INSERT spanning a century of monthly partitions (with and without the
setting the sinks add on such servers), and checks their results.

Only ClickHouse 18.16 installs on the dev machine; users run 24.x-26.x. Usage:

    python3 -m venv .gema/chdb && .gema/chdb/bin/pip install chdb-core
    .gema/chdb/bin/python scripts/check_modern_clickhouse.py

Prints the engine's version and each migration; exits 1 on the first statement that fails or a
result that differs.
"""
import glob
import os
import sys

from chdb import session

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DB = "gema_check"


def main():
    s = session.Session()

    def run(sql):
        try:
            return str(s.query(sql, "TSV")).strip()
        except Exception as e:  # chdb raises its own error types
            sys.exit(f"FAILED: {sql.strip()[:300]}\n  -> {e}")

    print("ClickHouse", run("SELECT version()"))
    run(f"CREATE DATABASE IF NOT EXISTS {DB}")
    for path in sorted(glob.glob(os.path.join(ROOT, "schemas/clickhouse/*.sql"))):
        name = os.path.basename(path)[:-4]
        body = open(path).read().replace("{db}", DB)
        body = "\n".join(l for l in body.splitlines() if not l.strip().startswith("--"))
        for statement in body.split(";"):
            if statement.strip():
                run(statement)
        if name.startswith("0004"):
            # A mention re-sent with another created_at, stored before 0005.
            run(
                f"INSERT INTO {DB}.mentions (key, platform, id, created_at, text, queries, version) VALUES "
                "('x:1','x','1',toDateTime('2026-11-26 10:00:00','UTC'),'first',['q'],1), "
                "('x:1','x','1',toDateTime('2026-11-26 10:05:00','UTC'),'edited',['q'],2)"
            )
        if name.startswith("0006"):
            # Two corrections of x:1: the later one is shown (src/query/mentions.rs).
            run(
                f"INSERT INTO {DB}.sentiment_corrections (key, label, corrected_by, corrected_at, version) VALUES "
                "('x:1','neutral','ana',toDateTime('2026-11-26 11:00:00','UTC'),1), "
                "('x:1','positive','budi',toDateTime('2026-11-26 11:05:00','UTC'),2)"
            )
        print("applied", name)

    checks = [
        (f"SELECT key, created_at, text FROM {DB}.mentions FINAL WHERE deleted = 0",
         "x:1\t2026-11-26 10:05:00\tedited"),
        (f"SELECT platform, id, created_at, version FROM {DB}.mention_keys FINAL "
         "WHERE (platform, id) IN (('x', '1'), ('x', '2'))",
         "x\t1\t2026-11-26 10:05:00\t2"),
        # The join of src/query/mentions.rs::search, as written there.
        (f"SELECT key, text, corrected_label, corrected_by FROM (SELECT * FROM {DB}.mentions FINAL "
         "WHERE created_at >= toDateTime(0) AND deleted = 0) AS m ANY LEFT JOIN (SELECT key, "
         "argMax(label, version) AS corrected_label, argMax(corrected_by, version) AS corrected_by "
         f"FROM {DB}.sentiment_corrections GROUP BY key) AS c USING key ORDER BY created_at DESC, key",
         "x:1\tedited\tpositive\tbudi"),
        # The join of src/query/alerts.rs::list, as written there (no alerts stored: empty).
        (f"SELECT id, if(s.status = '', 'new', s.status) AS status FROM (SELECT * FROM {DB}.alerts FINAL "
         "WHERE detected_at >= toDateTime(0)) AS a ANY LEFT JOIN (SELECT id, argMax(status, version) "
         f"AS status FROM {DB}.alert_status GROUP BY id) AS s USING id WHERE 1 ORDER BY detected_at DESC, id",
         ""),
        (f"SELECT toStartOfMinute(created_at) AS minute, q AS query, count() FROM {DB}.mentions FINAL "
         "ARRAY JOIN queries AS q WHERE created_at >= toDateTime(0) AND deleted = 0 "
         "GROUP BY minute, query",
         "2026-11-26 10:05:00\tq\t1"),
    ]
    for sql, want in checks:
        got = run(sql)
        if got != want:
            sys.exit(f"FAILED: {sql}\n  got  {got!r}\n  want {want!r}")
        print("ok", sql.split(" FROM ")[0][:70])

    # One INSERT spanning a century of monthly partitions (mentions from 2000 to 2099 are
    # accepted): refused by default, accepted with the setting the sinks use (src/store/client.rs).
    century = (
        f"INSERT INTO {DB}.mentions (key, platform, id, created_at, version) {{settings}} "
        "SELECT concat('x:c', toString(number)), 'x', concat('c', toString(number)), "
        "toDateTime('2000-01-15 00:00:00', 'UTC') + toIntervalMonth(number * 8), 1 "
        "FROM numbers(150)"
    )
    try:
        s.query(century.format(settings=""))
        sys.exit("FAILED: an INSERT over 150 partitions was accepted without the setting")
    except Exception as e:
        if "partitions" not in str(e).lower():
            sys.exit(f"FAILED: unexpected error {e}")
    run(century.format(settings="SETTINGS max_partitions_per_insert_block = 0"))
    print("ok one INSERT over 150 monthly partitions with max_partitions_per_insert_block = 0")
    got = run(f"SELECT count() FROM {DB}.mentions WHERE id LIKE 'c%'")
    if got != "150":
        sys.exit(f"FAILED: {got} of 150 rows of the century INSERT stored")


if __name__ == "__main__":
    main()
