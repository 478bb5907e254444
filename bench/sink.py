"""A fast loopback HTTP sink for the end-to-end benchmark (asyncio, raw protocol).

Run as its own process (``python bench/sink.py PORT``) so it never shares a GIL with the
load generator. Every ``POST`` (any path but the control paths) is answered ``200 {}``
at once and recorded as (arrival time, request body); bodies are parsed only when the
stats are read, so a request costs the sink a buffer split and a list append.

Control paths (same port):
- ``GET /_stats?since=K`` → ``{"count": N, "arrivals": [[arrival, sent], ...]}`` for the
  arrivals from index K on, where ``sent`` is the ``sent`` field of the JSON body (the
  client's ``time.time()`` at post; null when absent).
- ``POST /_reset`` → forget every arrival.

HTTP/1.1 keep-alive, Content-Length bodies and chunked bodies are supported; nothing
else is needed for Hookwise's webhook action (httpx).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


class Recorder:
    def __init__(self) -> None:
        self.arrivals: list[tuple[float, bytes]] = []

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
        return json.dumps({"count": len(self.arrivals), "arrivals": out}).encode()


class SinkProtocol(asyncio.Protocol):
    def __init__(self, rec: Recorder):
        self.rec = rec
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end].decode("latin-1")
            lines = head.split("\r\n")
            method, _, target = lines[0].partition(" ")
            target = target.rpartition(" ")[0]
            length = 0
            chunked = False
            for line in lines[1:]:
                name, _, value = line.partition(":")
                name = name.strip().lower()
                if name == "content-length":
                    length = int(value)
                elif name == "transfer-encoding" and "chunked" in value.lower():
                    chunked = True
            start = end + 4
            if chunked:
                parsed = _dechunk(self.buf, start)
                if parsed is None:
                    return
                body, stop = parsed
            else:
                if len(self.buf) - start < length:
                    return
                body, stop = self.buf[start:start + length], start + length
            self.buf = self.buf[stop:]
            self.handle(method, target, body)

    def handle(self, method: str, target: str, body: bytes) -> None:
        assert self.transport is not None
        if target.startswith("/_stats"):
            since = int(target.partition("since=")[2] or 0)
            payload = self.rec.stats(since)
            self.transport.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                + str(len(payload)).encode() + b"\r\n\r\n" + payload)
        elif target.startswith("/_reset"):
            self.rec.arrivals.clear()
            self.transport.write(OK)
        else:
            self.rec.arrivals.append((time.time(), body))
            self.transport.write(OK)


def _dechunk(buf: bytes, pos: int) -> tuple[bytes, int] | None:
    parts = []
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


async def serve(port: int) -> None:
    rec = Recorder()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SinkProtocol(rec), "127.0.0.1", port,
                                      backlog=1024)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(serve(int(sys.argv[1])))
    except KeyboardInterrupt:
        pass
