"""Load generators: ``wrk`` (closed loop, for requests/s) and a small asyncio HTTP/1.1
client (for bursts of exactly N posts and for paced posts carrying their send time).

wrk is used when it is on PATH (Debian: ``apt-get install wrk``); its Lua script posts a
JSON body with a content type, varies the body per request, and prints the summary
(requests, errors, latency percentiles in µs) as one JSON line. Without wrk the same
measurement is made with the asyncio client (``engine: python``) — slower, so it
under-reports servers faster than itself; the summary says which one was used.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

WRK_SCRIPT = r"""
local counter = 0
local types = {"order.paid", "order.created", "order.refunded", "customer.updated"}
local headers = {["Content-Type"] = "application/json"}

request = function()
  counter = counter + 1
  local body = string.format(
    '{"type":"%s","id":"w-%d","total":%d,"currency":"usd","customer":{"tier":"gold"},"sent":0}',
    types[counter % 4 + 1], counter, 5 + counter % 200)
  return wrk.format("POST", "__PATH__", headers, body)
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,' ..
    '"mean_us":%.1f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean))
end
"""


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def wrk(port: int, path: str, seconds: float, connections: int,
        threads: int = 1) -> dict[str, object]:
    """Closed-loop load with wrk: requests/s, errors and latency percentiles (ms)."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(WRK_SCRIPT.replace("__PATH__", path))
        script = f.name
    try:
        out = subprocess.run(
            ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{max(1, round(seconds))}s",
             "--timeout", "10s", "-s", script, f"http://127.0.0.1:{port}{path}"],
            capture_output=True, text=True, timeout=seconds + 60)
    finally:
        Path(script).unlink(missing_ok=True)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no summary: {out.stdout}\n{out.stderr}")
    s = json.loads(line[len("WRKJSON "):])
    duration = s["duration_us"] / 1e6
    errors = s["connect"] + s["read"] + s["write"] + s["status"] + s["timeout"]
    return {
        "engine": "wrk",
        "connections": connections,
        "seconds": round(duration, 2),
        "requests": s["requests"],
        "rps": round((s["requests"] - s["status"]) / duration, 1),
        "errors": errors,
        "non_2xx": s["status"],
        "p50_ms": round(s["p50_us"] / 1000, 2),
        "p90_ms": round(s["p90_us"] / 1000, 2),
        "p99_ms": round(s["p99_us"] / 1000, 2),
        "max_ms": round(s["max_us"] / 1000, 2),
    }


# -- asyncio client ----------------------------------------------------------------------


class _Conn:
    def __init__(self, port: int):
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        self.writer.write(
            b"POST " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: " + str(len(body)).encode()
            + b"\r\n\r\n" + body)
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            self.close()
            raise
        status = int(head[9:12])
        length = 0
        close = False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        if length:
            await self.reader.readexactly(length)
        if close:
            self.close()
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


BodyFn = Callable[[int], dict[str, object]]


async def _burst(port: int, path: str, n: int, concurrency: int, body: BodyFn,
                 ) -> dict[str, object]:
    counter = iter(range(n))
    lat: list[float] = []
    errors = 0

    async def client() -> None:
        nonlocal errors
        conn = _Conn(port)
        for i in counter:
            doc = body(i)
            doc["sent"] = time.time()
            t0 = time.perf_counter()
            try:
                status = await conn.post(path, json.dumps(doc).encode())
            except (OSError, asyncio.IncompleteReadError):
                status = 0
            if 200 <= status < 300:
                lat.append((time.perf_counter() - t0) * 1000)
            else:
                errors += 1
        conn.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    took = time.perf_counter() - t0
    return {"engine": "python", "connections": concurrency, "seconds": round(took, 2),
            "requests": len(lat) + errors, "rps": round(len(lat) / took, 1), "errors": errors,
            "p50_ms": _r(pct(lat, 0.5)), "p99_ms": _r(pct(lat, 0.99))}


def burst(port: int, path: str, n: int, concurrency: int, body: BodyFn) -> dict[str, object]:
    """Post exactly ``n`` bodies as fast as ``concurrency`` keep-alive connections allow.
    Each body gets ``sent`` = time.time() just before it is written."""
    return asyncio.run(_burst(port, path, n, concurrency, body))


def timed(port: int, path: str, seconds: float, concurrency: int,
          body: BodyFn) -> dict[str, object]:
    """Closed-loop load for ``seconds`` with the asyncio client (the no-wrk fallback)."""
    async def run() -> dict[str, object]:
        stop = time.perf_counter() + seconds
        lat: list[float] = []
        errors = 0

        async def client(k: int) -> None:
            nonlocal errors
            conn = _Conn(port)
            i = k
            while time.perf_counter() < stop:
                doc = body(i)
                doc["sent"] = time.time()
                t0 = time.perf_counter()
                try:
                    status = await conn.post(path, json.dumps(doc).encode())
                except (OSError, asyncio.IncompleteReadError):
                    status = 0
                if 200 <= status < 300:
                    lat.append((time.perf_counter() - t0) * 1000)
                else:
                    errors += 1
                i += concurrency
            conn.close()

        t0 = time.perf_counter()
        await asyncio.gather(*(client(k) for k in range(concurrency)))
        took = time.perf_counter() - t0
        return {"engine": "python", "connections": concurrency, "seconds": round(took, 2),
                "requests": len(lat) + errors, "rps": round(len(lat) / took, 1),
                "errors": errors, "p50_ms": _r(pct(lat, 0.5)), "p90_ms": _r(pct(lat, 0.9)),
                "p99_ms": _r(pct(lat, 0.99))}

    return asyncio.run(run())


def paced(port: int, path: str, rate: float, seconds: float, body: BodyFn,
          ) -> dict[str, object]:
    """Open-loop posts at ``rate``/s for ``seconds`` (each on a schedule, not after the
    previous answer), over a pool of keep-alive connections."""
    async def run() -> dict[str, object]:
        n = int(rate * seconds)
        pool: list[_Conn] = []
        lat: list[float] = []
        errors = 0

        async def one(i: int, at: float) -> None:
            nonlocal errors
            await asyncio.sleep(max(0.0, at - time.perf_counter()))
            conn = pool.pop() if pool else _Conn(port)
            doc = body(i)
            doc["sent"] = time.time()
            t0 = time.perf_counter()
            try:
                status = await conn.post(path, json.dumps(doc).encode())
            except (OSError, asyncio.IncompleteReadError):
                status = 0
            if 200 <= status < 300:
                lat.append((time.perf_counter() - t0) * 1000)
            else:
                errors += 1
            pool.append(conn)

        start = time.perf_counter() + 0.05
        await asyncio.gather(*(one(i, start + i / rate) for i in range(n)))
        for c in pool:
            c.close()
        return {"engine": "python", "requests": n, "errors": errors, "rate": rate,
                "p50_ms": _r(pct(lat, 0.5)), "p99_ms": _r(pct(lat, 0.99))}

    return asyncio.run(run())


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 2)
