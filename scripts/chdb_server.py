#!/usr/bin/env python3
"""A current ClickHouse (PyPI `chdb-core`, the engine in process) behind ClickHouse's HTTP interface,
as far as the `clickhouse` crate that gema uses speaks it, so gema itself runs against a modern
engine: its version detection, validated `RowBinaryWithNamesAndTypes` fetches and inserts, the
`DESCRIBE TABLE` before each insert, the writer's `max_partitions_per_insert_block`, every
migration and every query, exactly as gema sends them. Only the transport is Python; parsing and
executing is ClickHouse 26.9's.

Only ClickHouse 18.16 installs on the dev machine, users run 24.x-26.x: tests/modern_clickhouse.rs
starts this next to the live 18.16 server and compares the two. Usage:

    .gema/test-venv/bin/python scripts/chdb_server.py --log queries.jsonl

Listens on 127.0.0.1, a free port unless --port, and prints `listening on PORT` once ready. Every
request is appended to the log as one JSON line: {"query", "settings", "database", "rows_in",
"error"} (error null on success), the record of what gema sent and what the engine made of it.

The interface, as the crate uses it: POST / with the SQL in the body, or for an INSERT the SQL in
`?query=` and the rows in the body (LZ4 in ClickHouse's block framing when `decompress=1`, chunked
transfer encoding); `database` and `default_format` parameters; any other parameter is a setting,
applied for that request only. An error answers 500 with `Code: N. DB::Exception: ...` and the
`X-ClickHouse-Exception-Code` header, as the server does.
"""
import argparse
import json
import os
import re
import struct
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import lz4.block
from chdb import session

# Parameters that are not settings.
NOT_SETTINGS = {"query", "database", "default_format", "decompress", "compress", "role"}
INSERT_WITH_DATA = re.compile(r"^\s*INSERT\s+INTO\s+.*\bFORMAT\s+(\w+)\s*$", re.I | re.S)
SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def decompress(data):
    """ClickHouse's compressed block stream: per block a 16-byte checksum, the method byte, the
    compressed size (with the 9-byte header) and the decompressed size, then the payload."""
    out, at = bytearray(), 0
    while at < len(data):
        method, size, plain = struct.unpack_from("<BII", data, at + 16)
        payload = data[at + 25 : at + 16 + size]
        if method == 0x82:
            out += lz4.block.decompress(payload, uncompressed_size=plain)
        elif method == 0x02:
            out += payload
        else:
            raise ValueError(f"compression method 0x{method:02x} not supported here")
        at += 16 + size
    return bytes(out)


class Engine:
    """One chdb session, one statement at a time (the session is not thread-safe)."""

    def __init__(self, log_path):
        self.session = session.Session()
        self.lock = threading.Lock()
        self.log = open(log_path, "a", buffering=1) if log_path else None
        self.tmp = tempfile.mkdtemp(prefix="chdb-server-")

    def run(self, sql, params, data):
        database = params.get("database", "default")
        fmt = params.get("default_format", "TabSeparated")
        settings = {k: v for k, v in params.items() if k not in NOT_SETTINGS and not k.startswith("param_")}
        rows_in = None
        with self.lock:
            try:
                self.session.query(f"USE `{database}`")
                for k, v in settings.items():
                    if not SETTING_NAME.match(k):
                        raise ValueError(f"bad setting name {k!r}")
                    self.session.query(f"SET {k} = '{v}'" if not re.fullmatch(r"-?\d+", v) else f"SET {k} = {v}")
                try:
                    insert = INSERT_WITH_DATA.match(sql)
                    if insert:
                        if params.get("decompress") == "1":
                            data = decompress(data)
                        rows_in = len(data)
                        path = os.path.join(self.tmp, "insert.bin")
                        with open(path, "wb") as f:
                            f.write(data)
                        head = sql[: insert.start(1)].rstrip()
                        assert head.upper().endswith("FORMAT")
                        head = head[: -len("FORMAT")].rstrip()
                        self.session.query(f"{head} FROM INFILE '{path}' FORMAT {insert.group(1)}")
                        body = b""
                    else:
                        body = self.session.query(sql, fmt).bytes()
                finally:
                    for k in settings:
                        self.session.query(f"SET {k} = DEFAULT")
                error = None
            except Exception as e:  # chdb raises its own error types
                error = str(e)
            if self.log:
                self.log.write(
                    json.dumps(
                        {"query": sql, "settings": settings, "database": database, "rows_in": rows_in, "error": error}
                    )
                    + "\n"
                )
        if error is not None:
            raise RuntimeError(error)
        return body


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    engine = None

    def log_message(self, *args):
        pass

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def answer(self, status, body, headers=()):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if urlsplit(self.path).path == "/ping":
            return self.answer(200, b"Ok.\n")
        return self.do_POST()

    def do_POST(self):
        params = dict(parse_qsl(urlsplit(self.path).query, keep_blank_values=True))
        body = self.read_body()
        if "query" in params:
            sql, data = params["query"], body
        else:
            sql, data = body.decode("utf-8"), b""
        try:
            out = self.engine.run(sql, params, data)
        except Exception as e:
            text = str(e)
            code = re.search(r"Code: (\d+)", text)
            code = code.group(1) if code else "1001"
            if not text.startswith("Code:"):
                text = f"Code: {code}. DB::Exception: {text}"
            return self.answer(500, text.encode() + b"\n", [("X-ClickHouse-Exception-Code", code)])
        self.answer(200, out, [("Content-Type", "application/octet-stream")])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--log", help="append every request as a JSON line here")
    args = ap.parse_args()
    Handler.engine = Engine(args.log)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print("listening on", server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
