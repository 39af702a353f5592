#!/usr/bin/env python3
"""A ClickHouse HTTP interface over chDB, for tests only.

This machine's package registries carry no modern ClickHouse server, but chDB (PyPI `chdb`)
is the ClickHouse engine in-process. This adapter serves the part of ClickHouse's HTTP
interface that the official Rust client (`clickhouse` crate, default settings: LZ4 inserts,
RowBinary, schema validation) uses, so Gauntlet's ClickHouse store runs against the real
engine without knowing this exists:

  GET|HEAD /ping                      -> "Ok."
  GET /adapter-stats                  -> this adapter's own accounting (JSON): requests, their
                                         seconds, and the seconds chDB spent on them (the rest
                                         is the adapter's cost, which a real server has not)
  the SQL in ?query= or in the body   (a body is INSERT data when ?query= holds an INSERT)
  multipart/form-data bodies          (the crate sends `query` and `param_*` parts this way)
  ?decompress=1                       (INSERT data in ClickHouse's LZ4 compressed-block framing)
  ?param_NAME=                        (query parameters, {NAME:Type} in the SQL)
  ?database=, ?default_format= and settings as URL parameters
  errors                              -> status 500 (404 for unknown tables) with the header
                                         X-ClickHouse-Exception-Code and the message as body

Usage: python3 scripts/chdb_http.py --data DIR [--host 127.0.0.1] [--port 0] [--exit-with-stdin
                                   [--remove-data-on-exit]]
Prints "chdb-http listening on http://HOST:PORT" once it serves. Loopback only by default.
With --exit-with-stdin it exits when its standard input closes: a test process that
started it cannot leave it behind; with --remove-data-on-exit it deletes DIR then too (for a
test that keeps the adapter in a static, which Rust never drops, so the test's own temporary
directory is never deleted).
"""

import argparse
import email.parser
import email.policy
import os
import re
import shutil
import sys
import json
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import chdb.session
import lz4.block
from clickhouse_cityhash.cityhash import CityHash128

# URL parameters that are the client's protocol, not ClickHouse settings.
PROTOCOL_PARAMS = {"query", "database", "decompress", "compress", "query_id", "session_id",
                   "session_timeout", "user", "password", "default_format", "quota_key"}
FORMAT_AT_END = re.compile(r"\bFORMAT\s+(\w+)\s*;?\s*$", re.IGNORECASE)
EXCEPTION_CODE = re.compile(r"Code:\s*(\d+)")


def decompress_blocks(data: bytes) -> bytes:
    """ClickHouse's compressed framing: per block a CityHash128 of the rest (16 bytes), a
    method byte, the compressed size (with the 9-byte header) and the raw size, then data."""
    out = bytearray()
    pos = 0
    while pos < len(data):
        if len(data) - pos < 25:
            raise ValueError("truncated compressed block header")
        checksum = data[pos:pos + 16]
        method = data[pos + 16]
        size = int.from_bytes(data[pos + 17:pos + 21], "little")
        raw = int.from_bytes(data[pos + 21:pos + 25], "little")
        block = data[pos + 16:pos + 16 + size]
        if len(block) != size:
            raise ValueError("truncated compressed block")
        # CityHash v1.0.2's 128 bits as ClickHouse writes them: the high word, then the low.
        digest = CityHash128(bytes(block))
        low, high = digest & (2**64 - 1), digest >> 64
        if checksum != high.to_bytes(8, "little") + low.to_bytes(8, "little"):
            raise ValueError("compressed block checksum mismatch")
        payload = block[9:]
        if method == 0x82:
            out += lz4.block.decompress(payload, uncompressed_size=raw)
        elif method == 0x02:
            out += payload
        else:
            raise ValueError(f"unsupported compression method 0x{method:02x}")
        pos += 16 + size
    return bytes(out)


class Engine:
    """One chDB session (one data path per process); queries run one at a time."""

    def __init__(self, path: str):
        self.session = chdb.session.Session(path)
        self.lock = threading.Lock()
        self.engine_seconds = 0.0
        # INSERT bodies pass through files next to the data, so they go with it.
        self.spool = os.path.join(path, "adapter-inserts")
        os.makedirs(self.spool, exist_ok=True)

    def run(self, sql: str, database: str | None, settings: dict, params: dict,
            data: bytes | None, default_format: str | None) -> bytes:
        fmt = default_format or "TabSeparated"
        match = FORMAT_AT_END.search(sql)
        if match:
            fmt = match.group(1)
        with self.lock:
            started = time.perf_counter()
            try:
                return self._run(sql, match, fmt, database, settings, params, data)
            finally:
                self.engine_seconds += time.perf_counter() - started

    def _run(self, sql, match, fmt, database, settings, params, data) -> bytes:
        # Settings in the URL hold for this request only, as on a server: set, then reset.
        applied = []
        try:
            if database:
                self.session.query(f"USE `{database}`")
            for key, value in settings.items():
                if re.fullmatch(r"\w+", key):
                    try:
                        self.session.query(f"SET {key} = '{value}'")
                        applied.append(key)
                    except Exception:  # a setting chDB lacks: ClickHouse would refuse it too
                        pass
            return self._query(sql, match, fmt, params, data)
        finally:
            for key in applied:
                self.session.query(f"SET {key} = DEFAULT")

    def _query(self, sql, match, fmt, params, data) -> bytes:
        if data is not None:
            # INSERT ... FORMAT F with the rows in the body: chDB reads them from a file.
            fd, path = tempfile.mkstemp(dir=self.spool)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                head = sql[:match.start()] if match else sql
                self.session.query(f"{head} FROM INFILE '{path}' FORMAT {fmt}")
            finally:
                os.unlink(path)
            return b""
        body = sql[:match.start()] if match else sql
        if not body.strip():
            return b""
        result = self.session.query(body, fmt, params=params) if params else self.session.query(body, fmt)
        return result.bytes() if result is not None else b""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    engine: Engine = None  # set in main
    verbose = False
    requests = 0
    request_seconds = 0.0

    def log_message(self, *args):  # quiet: tests read stdout
        pass

    def reply(self, status: int, body: bytes, headers: dict | None = None):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Type", "text/plain; charset=UTF-8")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        path = urlsplit(self.path).path
        if path == "/ping":
            return self.reply(200, b"Ok.\n")
        if path == "/adapter-stats":
            stats = {"requests": Handler.requests, "request_seconds": Handler.request_seconds,
                     "engine_seconds": self.engine.engine_seconds}
            return self.reply(200, json.dumps(stats).encode())
        self.handle_query(b"")

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else self.read_chunked()
        self.handle_query(body)

    def read_chunked(self) -> bytes:
        if "chunked" not in (self.headers.get("Transfer-Encoding") or ""):
            return b""
        out = bytearray()
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip(), 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return bytes(out)
            out += self.rfile.read(size)
            self.rfile.readline()

    def handle_query(self, body: bytes):
        started = time.perf_counter()
        try:
            self._handle_query(body)
        finally:
            Handler.requests += 1
            Handler.request_seconds += time.perf_counter() - started

    def _handle_query(self, body: bytes):
        url = dict(parse_qsl(urlsplit(self.path).query, keep_blank_values=True))
        ctype = self.headers.get("Content-Type") or ""
        if ctype.startswith("multipart/form-data"):
            message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + body)
            for part in message.iter_parts():
                name = part.get_param("name", header="content-disposition")
                if name:
                    url[name] = part.get_payload(decode=True).decode()
            body = b""
        sql = url.get("query")
        data = None
        if sql is None:
            sql = body.decode()
        elif body:
            data = body
        if self.verbose:
            print(f"{self.command} {self.path[:300]} sql={sql[:300]!r} data={len(data or b'')}B",
                  file=sys.stderr, flush=True)
        try:
            if data is not None and url.get("decompress") == "1":
                data = decompress_blocks(data)
            params = {k[len("param_"):]: v for k, v in url.items() if k.startswith("param_")}
            settings = {k: v for k, v in url.items()
                        if k not in PROTOCOL_PARAMS and not k.startswith("param_")}
            out = self.engine.run(sql, url.get("database"), settings, params, data,
                                  url.get("default_format"))
            self.reply(200, out, {"X-ClickHouse-Format": "RowBinary"})
        except Exception as e:  # every failure as ClickHouse reports it
            message = str(e)
            code = EXCEPTION_CODE.search(message)
            code = code.group(1) if code else "1001"
            status = 404 if code == "60" else 500
            self.reply(status, message.encode(), {"X-ClickHouse-Exception-Code": code})


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="chDB's data directory")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--exit-with-stdin", action="store_true")
    ap.add_argument("--remove-data-on-exit", action="store_true",
                    help="with --exit-with-stdin: delete --data when standard input closes")
    ap.add_argument("--verbose", action="store_true", help="print each request's SQL to stderr")
    args = ap.parse_args()
    if args.exit_with_stdin:
        def watch():
            sys.stdin.buffer.read()
            if args.remove_data_on_exit:
                shutil.rmtree(args.data, ignore_errors=True)
            os._exit(0)
        threading.Thread(target=watch, daemon=True).start()
    Handler.engine = Engine(args.data)
    Handler.verbose = args.verbose
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    host, port = server.server_address[:2]
    print(f"chdb-http listening on http://{host}:{port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
