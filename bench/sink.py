"""A loopback HTTP sink for the end-to-end benchmarks (asyncio, raw protocol).

Run as its own process so it never shares a GIL with the load generator::

    python bench/sink.py PORT [--latency-ms N] [--hang]

Every ``POST`` (any path but the control paths) is recorded as (arrival time, request
body, Idempotency-Key) when its last byte arrives, and answered ``200 {}``:

- at once (the default), so a request costs the sink a buffer split and a list append;
- after ``--latency-ms`` N ms, on a timer: a slow receiver that still serves every
  connection concurrently (thousands of requests can be waiting at once);
- never, with ``--hang``: the connection stays open until the client gives up (a
  receiver that is down but does not refuse connections).

Bodies are parsed only when the stats are read.

Control paths (same port, always answered at once):
- ``GET /_stats?since=K`` → ``{"count": N, "distinct": D, "arrivals": [[arrival, sent],
  ...], ...}`` for the arrivals from index K on, where ``sent`` is the ``sent`` field of
  the JSON body (the client's ``time.time()`` at post; null when absent). ``count``
  counts every request, ``distinct`` the distinct Idempotency-Key values (one per step,
  however often it was tried); also ``connections`` (accepted), ``open`` (open now),
  ``held_max_s`` (with --hang: the longest a client waited on a request before it
  closed the connection, or has been waiting so far), ``outages`` ([[down, up], ...]
  in ``time.time()``; ``up`` null while down), ``latency_ms`` and ``hang``.
- ``POST /_reset`` → forget every arrival, connection figure and outage.
- ``POST /_down?s=S`` → answer, then close the listening socket and every connection
  (connections are refused: a receiver that is down) and listen again after S seconds.
  The control paths are unreachable meanwhile.

HTTP/1.1 keep-alive, Content-Length bodies and chunked bodies are supported; nothing
else is needed for Hookwise's webhook action (httpx) and the load generators.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
BACKLOG = 4096


class Recorder:
    """What arrived, and the sink's behaviour (latency, hang) and connection figures."""

    def __init__(self, latency_ms: float = 0.0, hang: bool = False) -> None:
        self.latency_s = latency_ms / 1000
        self.hang = hang
        self.arrivals: list[tuple[float, bytes]] = []
        self.keys: set[str] = set()
        self.connections = 0
        self.open: set[SinkProtocol] = set()
        self.held_max_s = 0.0
        self.outages: list[list[float | None]] = []

    def reset(self) -> None:
        self.arrivals.clear()
        self.keys.clear()
        self.connections = 0
        self.held_max_s = 0.0
        self.outages.clear()

    def held_longest(self) -> float:
        """The longest a client held a request that got no answer, s (closed or not)."""
        now = time.monotonic()
        waiting = [now - c.waiting_since for c in self.open if c.waiting_since is not None]
        return max([self.held_max_s, *waiting])

    def stats(self, since: int) -> bytes:
        out = []
        for arrival, body in self.arrivals[since:]:
            sent = None
            try:
                value = json.loads(body).get("sent")
                sent = float(value) if value not in (None, "") else None
            except (ValueError, AttributeError, TypeError):
                pass
            out.append([arrival, sent])
        return json.dumps({
            "count": len(self.arrivals), "distinct": len(self.keys), "arrivals": out,
            "connections": self.connections, "open": len(self.open),
            "held_max_s": round(self.held_longest(), 3), "outages": self.outages,
            "latency_ms": self.latency_s * 1000, "hang": self.hang,
        }).encode()


class Sink:
    """The listening socket, which /_down closes for a while."""

    def __init__(self, rec: Recorder, port: int) -> None:
        self.rec = rec
        self.port = port
        self.server: asyncio.Server | None = None

    async def listen(self) -> None:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: SinkProtocol(self), "127.0.0.1",
                                               self.port, backlog=BACKLOG,
                                               reuse_address=True)

    def go_down(self, seconds: float, caller: SinkProtocol | None = None) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        for conn in list(self.rec.open):
            if conn is caller:
                conn.close()  # after its answer
            else:
                conn.abort()
        self.rec.outages.append([time.time(), None])
        asyncio.get_running_loop().call_later(seconds, self._come_back)

    def _come_back(self) -> None:
        async def up() -> None:
            await self.listen()
            self.rec.outages[-1][1] = time.time()

        asyncio.ensure_future(up())


class SinkProtocol(asyncio.Protocol):
    def __init__(self, sink: Sink):
        self.sink = sink
        self.rec = sink.rec
        self.buf = b""
        self.transport: asyncio.Transport | None = None
        self.waiting_since: float | None = None  # a request left unanswered (--hang)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.rec.connections += 1
        self.rec.open.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.rec.open.discard(self)
        if self.waiting_since is not None:
            held = time.monotonic() - self.waiting_since
            self.rec.held_max_s = max(self.rec.held_max_s, held)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            parsed = _parse_request(self.buf)
            if parsed is None:
                return
            method, target, key, body, stop = parsed
            self.buf = self.buf[stop:]
            self.handle(method, target, key, body)

    def handle(self, method: str, target: str, key: str | None, body: bytes) -> None:
        if target.startswith("/_stats"):
            since = int(target.partition("since=")[2] or 0)
            self.write(_json_response(self.rec.stats(since)))
        elif target.startswith("/_reset"):
            self.rec.reset()
            self.write(OK)
        elif target.startswith("/_down"):
            seconds = float(target.partition("s=")[2] or 30)
            self.write(OK)
            asyncio.get_running_loop().call_soon(self.sink.go_down, seconds, self)
        else:
            self.rec.arrivals.append((time.time(), body))
            if key is not None:
                self.rec.keys.add(key)
            if self.rec.hang:
                if self.waiting_since is None:
                    self.waiting_since = time.monotonic()
                return
            if self.rec.latency_s > 0:
                asyncio.get_running_loop().call_later(self.rec.latency_s, self.write, OK)
            else:
                self.write(OK)

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)


def _json_response(payload: bytes) -> bytes:
    return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(payload)).encode() + b"\r\n\r\n" + payload)


def _parse_request(buf: bytes) -> tuple[str, str, str | None, bytes, int] | None:
    """(method, target, Idempotency-Key, body, end offset) of the first complete request
    in ``buf``, or None while it is incomplete."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = buf[:end].decode("latin-1").split("\r\n")
    method, _, target = lines[0].partition(" ")
    target = target.rpartition(" ")[0]
    length, chunked, key = 0, False, None
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
        elif name == "idempotency-key":
            key = value.strip()
    start = end + 4
    if chunked:
        parsed = _dechunk(buf, start)
        if parsed is None:
            return None
        body, stop = parsed
    else:
        if len(buf) - start < length:
            return None
        body, stop = buf[start:start + length], start + length
    return method, target, key, body, stop


def _dechunk(buf: bytes, pos: int) -> tuple[bytes, int] | None:
    parts: list[bytes] = []
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        size = int(buf[pos:eol].split(b";")[0], 16)
        pos = eol + 2
        if size == 0:
            trailer_end = buf.find(b"\r\n", pos)
            if trailer_end < 0:
                return None
            return b"".join(parts), trailer_end + 2
        if len(buf) < pos + size + 2:
            return None
        parts.append(buf[pos:pos + size])
        pos += size + 2


async def serve(port: int, latency_ms: float = 0.0, hang: bool = False) -> None:
    sink = Sink(Recorder(latency_ms, hang), port)
    await sink.listen()
    print("ready", flush=True)
    await asyncio.Event().wait()  # /_down closes and reopens the server: not serve_forever


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("port", type=int)
    ap.add_argument("--latency-ms", type=float, default=0.0,
                    help="answer each POST after this many ms (without blocking others)")
    ap.add_argument("--hang", action="store_true",
                    help="accept and read each POST, never answer it")
    args = ap.parse_args()
    try:
        asyncio.run(serve(args.port, args.latency_ms, args.hang))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
