#!/usr/bin/env python3
"""Applies schemas/clickhouse/*.sql to the local replicated cluster (scripts/cluster/clickhouse.sh),
rewritten for ON CLUSTER and Replicated engines: the reference for the rewrite rule that gema's
migration runner needs on ClickHouse 18.16. Standard library only; a research and test aid, not
used by gema itself.

    scripts/cluster/apply_schemas.py [--db gema_c] [--port 18123] [--upto N] [--seed]

Like src/store/migrate.rs: {db} is spliced in, comment lines dropped, the file split on ';', and
`ADD COLUMN IF NOT EXISTS` (which 18.16 cannot parse) runs as a plain ADD COLUMN only when
system.columns lacks the column; schema_migrations records what was applied. --seed inserts 1000
mentions (900 keys, some with two created_at) after 0002, so that 0003 and 0005 move real rows.

The rule, statement by statement (cluster `gema_cluster`):
  CREATE DATABASE ...                  -> append ON CLUSTER gema_cluster
  CREATE TABLE [IF NOT EXISTS] d.t (   -> CREATE TABLE [IF NOT EXISTS] d.t ON CLUSTER gema_cluster (
  ENGINE = <X>MergeTree[(args)]        -> ENGINE = Replicated<X>MergeTree(
                                            '/clickhouse/tables/{shard}/<d>/<t>', '{replica}'[, args])
                                          d and t spelled out: {database}/{table} expand again at
                                          every server start, so a RENAMEd table would look for
                                          another path and the server would not start
  ALTER TABLE d.t ...                  -> ALTER TABLE d.t ON CLUSTER gema_cluster ...
  DROP TABLE ..., RENAME TABLE ...     -> append ON CLUSTER gema_cluster
  INSERT ... (SELECT ...)              -> unchanged, on one replica only: replication copies the rows
"""
import argparse
import glob
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request

CLUSTER = "gema_cluster"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENGINE = re.compile(
    r"ENGINE\s*=\s*(Replacing|Summing|Aggregating|Collapsing|VersionedCollapsing)?MergeTree"
    r"(\s*\(([^)]*)\))?"
)
CREATE_TABLE = re.compile(r"CREATE TABLE (IF NOT EXISTS )?(\w+)\.(\w+)\s*\(", re.I)
ALTER_TABLE = re.compile(r"ALTER TABLE \w+\.\w+", re.I)
APPEND = re.compile(r"(DROP TABLE|RENAME TABLE|CREATE DATABASE)\b", re.I)
ADD_IF_MISSING = re.compile(
    r"ALTER TABLE (\w+)\.(\w+) (?:ON CLUSTER \w+ )?ADD COLUMN IF NOT EXISTS (\w+) ", re.I
)


def rewrite(statement: str) -> str:
    s = statement.strip()
    m = CREATE_TABLE.match(s)
    if m:
        db, table = m.group(2), m.group(3)
        s = s[: m.end() - 1].rstrip() + f" ON CLUSTER {CLUSTER}\n" + s[m.end() - 1 :]

        def engine(e):
            kind, args = e.group(1) or "", (e.group(3) or "").strip()
            path = f"'/clickhouse/tables/{{shard}}/{db}/{table}', '{{replica}}'"
            return f"ENGINE = Replicated{kind}MergeTree({path}{', ' + args if args else ''})"

        return ENGINE.sub(engine, s, count=1)
    m = ALTER_TABLE.match(s)
    if m:
        return s[: m.end()] + f" ON CLUSTER {CLUSTER}" + s[m.end() :]
    if APPEND.match(s):
        return s + f" ON CLUSTER {CLUSTER}"
    return s


class Replica:
    def __init__(self, port: int):
        self.port = port

    def query(self, sql: str) -> str:
        url = f"http://127.0.0.1:{self.port}/"
        try:
            with urllib.request.urlopen(urllib.request.Request(url, data=sql.encode())) as r:
                return r.read().decode()
        except urllib.error.HTTPError as e:
            raise SystemExit(f"failed ({e.code}): {sql}\n{e.read().decode()}")

    def run(self, statement: str) -> None:
        s = rewrite(statement)
        m = ADD_IF_MISSING.match(s)
        if m:
            db, table, column = m.groups()
            n = self.query(
                f"SELECT count() FROM system.columns "
                f"WHERE database = '{db}' AND table = '{table}' AND name = '{column}'"
            )
            if int(n):
                print(f"  skipped: {db}.{table} has {column}")
                return
            s = s.replace("ADD COLUMN IF NOT EXISTS", "ADD COLUMN", 1)
        start = time.time()
        self.query(s)
        one = " ".join(s.split())
        print(f"  {(time.time() - start) * 1000:7.1f} ms  {one[:140]}{'...' if len(one) > 140 else ''}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", default="gema_c")
    ap.add_argument("--port", type=int, default=int(os.environ.get("GEMA_CH1_HTTP_PORT", "18123")))
    ap.add_argument("--upto", type=int, default=10**6, help="last migration version to apply")
    ap.add_argument("--seed", action="store_true")
    args = ap.parse_args()
    db, ch = args.db, Replica(args.port)
    if not re.fullmatch(r"\w+", db):
        raise SystemExit("--db: letters, digits and _ only")

    ch.run(f"CREATE DATABASE IF NOT EXISTS {db}")
    ch.run(
        f"CREATE TABLE IF NOT EXISTS {db}.schema_migrations (version UInt32, name String, "
        f"applied_at DateTime('UTC') DEFAULT now()) ENGINE = ReplacingMergeTree ORDER BY version"
    )
    for path in sorted(glob.glob(os.path.join(ROOT, "schemas/clickhouse/*.sql"))):
        name = os.path.basename(path)[:-4]
        version = int(name[:4])
        if version > args.upto:
            break
        if int(ch.query(f"SELECT count() FROM {db}.schema_migrations FINAL WHERE version = {version}")):
            print(f"{name}: applied before")
            continue
        print(name)
        with open(path) as f:
            text = f.read().replace("{db}", db)
        body = "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("--"))
        for statement in body.split(";"):
            if statement.strip():
                ch.run(statement)
        ch.run(f"INSERT INTO {db}.schema_migrations (version, name) VALUES ({version}, '{name}')")
        if args.seed and version == 2:
            print("  seeding 1000 mentions (900 keys)")
            ch.run(
                f"INSERT INTO {db}.mentions (key, platform, id, created_at, ingested_at, enriched_at, "
                f"author_id, text, sentiment, queries, version) "
                f"SELECT concat('x:', toString(number % 900)), 'x', toString(number % 900), "
                f"toDateTime('2026-12-01 00:00:00') + number * 7, now(), now(), "
                f"concat('a', toString(number % 37)), 'hello', "
                f"['negative', 'neutral', 'positive'][number % 3 + 1], ['acme'], number "
                f"FROM system.numbers LIMIT 1000"
            )


if __name__ == "__main__":
    main()
