"""A multi-host Hookwise on one machine, and the faults that only several hosts have
(issue 16, "Past one machine").

Every host is a Linux network namespace with its own address on a bridge
(``ip netns`` and veth pairs, iproute2; needs root):

    root namespace  10.X.0.1   the load generator, a TCP round-robin in front of the
                               web hosts (:8080) and the receiver (:9000, answers after
                               50-200 ms, records each call's Idempotency-Key)
    db              10.X.0.10  a fresh PostgreSQL (initdb in a temp dir)
    redis           10.X.0.11  a fresh redis-server (AOF); with --sentinel also the
    redis2          10.X.0.12  replica, and a Sentinel on each of db, redis, redis2
    web1, web2      10.X.0.21-22  `hookwise web`
    w1, w2, w3      10.X.0.31-33  `hookwise worker`

Each fault runs while a burst of events flows through the round-robin:

    cut        a worker host's link goes down mid-delivery (processes keep running),
               back after 15 s
    freeze     a worker host's processes are SIGSTOPped for 15 s (past the 10 s
               heartbeat), then resumed
    web-kill   a web host is SIGKILLed (the round-robin routes around it)
    db-drop    a worker host cannot reach PostgreSQL for 20 s
    skew       a worker host's clock runs 30 s ahead (libfaketime; skipped without it)
    redis      the Redis host restarts
    failover   with --sentinel: the Redis primary is SIGKILLed; Sentinels promote the
               replica

For each it reports events accepted (2xx), delivered, lost (accepted, never delivered:
must be 0), repeats (deliveries beyond one per event), unexplained repeats (an event
delivered with two different Idempotency-Keys: must be 0), other answers (503s and
connection errors: never a 2xx for an event not stored), and how long after the fault
began the last accepted event was delivered.

    sudo python bench/cluster.py                 # every fault, ~6 minutes
    sudo python bench/cluster.py --short         # cut, freeze, web-kill; ~2 minutes
    sudo python bench/cluster.py --faults cut,failover --sentinel

It prints a table and writes bench/results/cluster.json; exit 1 if anything was lost or
repeated unexplained. Everything it starts (namespaces, bridge, processes) it removes.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import itertools
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
HOOKWISE = str(Path(sys.executable).with_name("hookwise"))
PG_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"))), Path("/usr/bin"))
ALL_FAULTS = ("cut", "freeze", "web-kill", "db-drop", "skew", "redis", "failover")
SHORT_FAULTS = ("cut", "freeze", "web-kill")
SERVICE = "hookwise"

RULES = """
sources: [{{slug: orders}}]
rules:
  - name: forward
    source: orders
    actions:
      - id: out
        type: webhook
        url: http://{sink}/deliver
        json: {{n: "{{{{ body.n }}}}"}}
"""


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=check, capture_output=True, text=True)


# -- the network ----------------------------------------------------------------------
class Net:
    """A bridge in the root namespace and one namespace per host, linked by veth pairs."""

    def __init__(self) -> None:
        tag = os.getpid() % 10000
        self.octet = 100 + os.getpid() % 150
        self.prefix = f"hw{tag}"
        self.bridge = f"{self.prefix}br"
        self.hosts: dict[str, str] = {}  # name -> address
        self.gateway = self.ip(1)

    def ip(self, last: int) -> str:
        return f"10.{self.octet}.0.{last}"

    def ns(self, host: str) -> str:
        return f"{self.prefix}-{host}"

    def veth(self, host: str) -> str:
        return f"{self.prefix}{host}"[:15]

    def up(self) -> None:
        sh("ip", "link", "add", self.bridge, "type", "bridge")
        sh("ip", "addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        sh("ip", "link", "set", self.bridge, "up")

    def add(self, host: str, last: int) -> str:
        ns, veth, addr = self.ns(host), self.veth(host), self.ip(last)
        sh("ip", "netns", "add", ns)
        sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
        sh("ip", "link", "set", veth, "master", self.bridge)
        sh("ip", "link", "set", veth, "up")
        for cmd in (("ip", "addr", "add", f"{addr}/24", "dev", "eth0"),
                    ("ip", "link", "set", "eth0", "up"), ("ip", "link", "set", "lo", "up"),
                    ("ip", "route", "add", "default", "via", self.gateway)):
            sh("ip", "netns", "exec", ns, *cmd)
        self.hosts[host] = addr
        return addr

    def cut(self, host: str, down: bool) -> None:
        sh("ip", "link", "set", self.veth(host), "down" if down else "up")

    def blackhole(self, host: str, to: str, on: bool) -> None:
        sh("ip", "netns", "exec", self.ns(host), "ip", "route", "add" if on else "del",
           "blackhole", f"{to}/32", check=on)

    def down(self) -> None:
        for host in list(self.hosts):
            sh("ip", "netns", "del", self.ns(host), check=False)
        sh("ip", "link", "del", self.bridge, check=False)
        self.hosts.clear()


# -- processes ------------------------------------------------------------------------
@dataclass
class Proc:
    name: str
    host: str
    popen: subprocess.Popen[bytes]
    log_path: Path


class Procs:
    def __init__(self, net: Net, logs: Path):
        self.net, self.logs = net, logs
        self.all: list[Proc] = []

    def start(self, name: str, host: str | None, argv: list[str],
              env: dict[str, str] | None = None, user: str | None = None) -> Proc:
        cmd = list(argv)
        if user:
            cmd = ["runuser", "-u", user, "--", *cmd]
        if host is not None:
            cmd = ["ip", "netns", "exec", self.net.ns(host), *cmd]
        path = self.logs / f"{name}.log"
        out = path.open("ab")
        p = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                             start_new_session=True, cwd=self.logs)
        proc = Proc(name, host or "root", p, path)
        self.all.append(proc)
        return proc

    def signal(self, proc: Proc, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.popen.pid, sig)

    def stop(self, proc: Proc, timeout: float = 20) -> None:
        self.signal(proc, signal.SIGCONT)
        self.signal(proc, signal.SIGTERM)
        try:
            proc.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(proc, signal.SIGKILL)
            proc.popen.wait(5)

    def stop_all(self) -> None:
        for proc in reversed(self.all):
            if proc.popen.poll() is None:
                self.stop(proc, timeout=10)
        self.all.clear()


# -- the receiver and the round-robin -------------------------------------------------
class Receiver:
    """Answers 200 after 50-200 ms; records (n, Idempotency-Key, arrival) per call."""

    def __init__(self, host: str, port: int):
        self.calls: list[tuple[int, str, float]] = []
        lock = threading.Lock()
        calls = self.calls

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                time.sleep(random.uniform(0.05, 0.2))
                try:
                    n = int(json.loads(body)["n"])
                except (ValueError, KeyError, TypeError):
                    n = -1
                with lock:
                    calls.append((n, self.headers.get("Idempotency-Key", ""), time.time()))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class RoundRobin:
    """A TCP round-robin: each new connection goes to the next web host that accepts."""

    def __init__(self, host: str, port: int, backends: list[tuple[str, int]]):
        self.backends = backends
        self._next = itertools.count()
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        async def serve() -> None:
            self.server = await asyncio.start_server(self._handle, host, port)
            ready.set()
            with contextlib.suppress(asyncio.CancelledError):
                await self.server.serve_forever()

        threading.Thread(target=self.loop.run_until_complete, args=(serve(),),
                         daemon=True).start()
        ready.wait(5)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        first = next(self._next)
        for i in range(len(self.backends)):  # the next one, then the others in turn
            host, port = self.backends[(first + i) % len(self.backends)]
            try:
                up_r, up_w = await asyncio.wait_for(asyncio.open_connection(host, port), 1)
                break
            except (TimeoutError, OSError):
                continue
        else:
            writer.close()
            return

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            try:
                while data := await r.read(65536):
                    w.write(data)
                    await w.drain()
            except (OSError, asyncio.IncompleteReadError):
                pass
            finally:
                with contextlib.suppress(Exception):
                    w.close()

        await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.server.close)


# -- the cluster ----------------------------------------------------------------------
@dataclass
class FaultResult:
    fault: str
    accepted: int = 0
    delivered: int = 0
    lost: int = 0
    repeats: int = 0
    repeats_same_key: int = 0
    unexplained_repeats: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    all_delivered_after_s: float | None = None
    note: str = ""


class Cluster:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="hw-cluster-"))
        self.tmp.chmod(0o755)
        self.net = Net()
        self.procs = Procs(self.net, self.tmp)
        self.web: dict[str, Proc] = {}
        self.workers: dict[str, Proc] = {}
        self.redis: dict[str, Proc] = {}
        self.n = itertools.count()

    # addresses
    @property
    def db_ip(self) -> str:
        return self.net.hosts["db"]

    @property
    def redis_url(self) -> str:
        if self.args.sentinel:
            hosts = ",".join(f"{self.net.hosts[h]}:26379" for h in ("db", "redis", "redis2"))
            return f"redis+sentinel://{hosts}/{SERVICE}/0"
        return f"redis://{self.net.hosts['redis']}:6379/0"

    def env(self, host: str) -> dict[str, str]:
        data = self.tmp / f"data-{host}"
        data.mkdir(exist_ok=True)
        return {**os.environ,
                "HOOKWISE_DATA_DIR": str(data),
                "HOOKWISE_DATABASE_URL": f"postgresql+psycopg2://postgres@{self.db_ip}:5432/postgres",
                "HOOKWISE_REDIS_URL": self.redis_url,
                "HOOKWISE_SECRET_KEY": "cluster-rig-key-shared-by-every-host",
                "HOOKWISE_EGRESS_ALLOW": f"10.{self.net.octet}.0.0/24"}

    def up(self) -> None:
        net = self.net
        net.up()
        for host, last in (("db", 10), ("redis", 11), ("redis2", 12), ("web1", 21),
                           ("web2", 22), ("w1", 31), ("w2", 32), ("w3", 33)):
            net.add(host, last)
        self._postgres()
        self._redis()
        env = self.env("admin")
        rules = self.tmp / "rules.yaml"
        rules.write_text(RULES.format(sink=f"{net.gateway}:9000"))
        for cmd in (["db", "upgrade"], ["apply", str(rules)]):
            done = subprocess.run([HOOKWISE, *cmd], env=env, capture_output=True, text=True)
            if done.returncode:
                raise RuntimeError(f"hookwise {' '.join(cmd)}: {done.stderr or done.stdout}")
        self.receiver = Receiver(net.gateway, 9000)
        for host in ("web1", "web2"):
            self.start_web(host)
        for host in ("w1", "w2", "w3"):
            self.start_worker(host)
        self.lb = RoundRobin(net.gateway, 8080, [(net.hosts[h], 8000) for h in ("web1", "web2")])
        self.wait_ready()

    def _postgres(self) -> None:
        data = self.tmp / "pg"
        data.mkdir()
        shutil.chown(data, "postgres", "postgres")
        subprocess.run(["runuser", "-u", "postgres", "--", str(PG_BIN / "initdb"), "-D",
                        str(data), "-A", "trust", "-U", "postgres", "--no-sync"],
                       check=True, capture_output=True)
        with (data / "pg_hba.conf").open("a") as hba:
            hba.write(f"host all all 10.{self.net.octet}.0.0/24 trust\n")
        self.procs.start("postgres", "db", [
            str(PG_BIN / "postgres"), "-D", str(data), "-c", f"listen_addresses={self.db_ip}",
            "-c", "port=5432", "-c", f"unix_socket_directories={data}", "-c", "fsync=off",
            "-c", "max_connections=200"], user="postgres")
        deadline = time.monotonic() + 30
        while sh(str(PG_BIN / "pg_isready"), "-h", self.db_ip, "-p", "5432",
                 check=False).returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError("PostgreSQL did not start")
            time.sleep(0.2)

    def _redis_server(self, host: str, *extra: str) -> Proc:
        d = self.tmp / f"redis-{host}"
        d.mkdir(exist_ok=True)
        return self.procs.start(f"redis-{host}", host, [
            "redis-server", "--bind", self.net.hosts[host], "--port", "6379", "--dir", str(d),
            "--save", "", "--appendonly", "yes", "--appendfsync", "everysec",
            "--protected-mode", "no", *extra])

    def _redis(self) -> None:
        import redis

        self.redis["redis"] = self._redis_server("redis")
        if self.args.sentinel:
            self.redis["redis2"] = self._redis_server(
                "redis2", "--replicaof", self.net.hosts["redis"], "6379")
            for host in ("db", "redis", "redis2"):
                conf = self.tmp / f"sentinel-{host}.conf"
                conf.write_text(
                    f"port 26379\nbind {self.net.hosts[host]}\nprotected-mode no\n"
                    f"sentinel monitor {SERVICE} {self.net.hosts['redis']} 6379 2\n"
                    f"sentinel down-after-milliseconds {SERVICE} 2000\n"
                    f"sentinel failover-timeout {SERVICE} 10000\n")
                self.procs.start(f"sentinel-{host}", host,
                                 ["redis-server", str(conf), "--sentinel"])
        deadline = time.monotonic() + 20
        while True:
            try:
                r = redis.Redis(host=self.net.hosts["redis"], socket_timeout=1)
                if r.ping() and (not self.args.sentinel or r.info("replication")
                                 .get("connected_slaves", 0) >= 1):
                    break
            except redis.RedisError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("Redis did not start")
            time.sleep(0.2)
        if self.args.sentinel:
            time.sleep(2)  # the Sentinels discover the replica

    def start_web(self, host: str) -> None:
        self.web[host] = self.procs.start(host, host, [
            HOOKWISE, "web", "--host", self.net.hosts[host], "--port", "8000", "--workers", "1",
            "--threads", "8", "--no-migrate"], env=self.env(host))

    def start_worker(self, host: str, prefix: list[str] | None = None) -> None:
        self.workers[host] = self.procs.start(host, host, [*(prefix or []), HOOKWISE, "worker"],
                                              env=self.env(host))

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        for host in ("web1", "web2"):
            url = f"http://{self.net.hosts[host]}:8000/healthz"
            while True:
                try:
                    with urllib.request.urlopen(url, timeout=1) as resp:
                        if resp.status == 200:
                            break
                except (OSError, urllib.error.URLError):
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{host} did not start (see {self.tmp}/{host}.log)")
                time.sleep(0.2)
        time.sleep(2)  # workers register

    def down(self) -> None:
        for closer in ("lb", "receiver"):
            with contextlib.suppress(Exception):
                getattr(self, closer).close()
        self.procs.stop_all()
        self.net.down()
        if not self.args.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)

    # -- load ---------------------------------------------------------------------------
    def burst(self, events: int, rate: float, during: Any = None
              ) -> tuple[dict[int, str], collections.Counter[str]]:
        """Post ``events`` at ``rate``/s through the round-robin; ``during(start)`` runs
        the fault in a thread meanwhile. Answers: n -> event id for 2xx; a Counter of the
        other outcomes."""
        import httpx

        accepted: dict[int, str] = {}
        other: collections.Counter[str] = collections.Counter()
        lock = threading.Lock()
        url = f"http://{self.net.gateway}:8080/hooks/orders"

        def post(n: int) -> None:
            try:
                with httpx.Client(timeout=10) as c:
                    r = c.post(url, json={"n": n})
                outcome = r.status_code
            except httpx.HTTPError as exc:
                outcome = type(exc).__name__
            with lock:
                if outcome in (200, 202):
                    accepted[n] = "ok"
                else:
                    other[str(outcome)] += 1

        fault = threading.Thread(target=during, daemon=True) if during else None
        start = time.monotonic()
        with ThreadPoolExecutor(16) as pool:
            for i in range(events):
                if fault is not None and i == events // 4:
                    fault.start()
                pool.submit(post, next(self.n))
                time.sleep(max(0.0, start + (i + 1) / rate - time.monotonic()))
        if fault is not None:
            fault.join()
        return accepted, other

    def measure(self, name: str, during: Any, note: str = "") -> FaultResult:
        log(f"{name}: burst of {self.args.events} at {self.args.rate}/s")
        first_call = len(self.receiver.calls)
        began: list[float] = []

        def timed() -> None:
            began.append(time.time())
            during()

        accepted, other = self.burst(self.args.events, self.args.rate, timed)
        want = set(accepted)
        deadline = time.monotonic() + self.args.settle
        while time.monotonic() < deadline:
            got = {n for n, _, _ in self.receiver.calls[first_call:]}
            if want <= got:
                break
            time.sleep(0.5)
        calls = [c for c in self.receiver.calls[first_call:] if c[0] in want]
        keys: dict[int, set[str]] = collections.defaultdict(set)
        counts: collections.Counter[int] = collections.Counter()
        for n, key, _ in calls:
            keys[n].add(key)
            counts[n] += 1
        delivered = set(counts)
        repeats = sum(c - 1 for c in counts.values())
        unexplained = sum(len(k) - 1 for k in keys.values())
        last = max((t for n, _, t in calls), default=None)
        res = FaultResult(
            name, accepted=len(want), delivered=len(delivered), lost=len(want - delivered),
            repeats=repeats, repeats_same_key=repeats - unexplained,
            unexplained_repeats=unexplained, refused=dict(other),
            all_delivered_after_s=round(last - began[0], 1) if last and began
            and not want - delivered else None, note=note)
        log(f"  {res}")
        return res

    # -- faults -------------------------------------------------------------------------
    def fault_cut(self) -> FaultResult:
        def during() -> None:
            self.net.cut("w1", True)
            time.sleep(15)
            self.net.cut("w1", False)
        return self.measure("cut", during, "w1's link down 15 s")

    def fault_freeze(self) -> FaultResult:
        def during() -> None:
            self.procs.signal(self.workers["w2"], signal.SIGSTOP)
            time.sleep(15)
            self.procs.signal(self.workers["w2"], signal.SIGCONT)
        return self.measure("freeze", during, "w2 SIGSTOPped 15 s (heartbeat 10 s)")

    def fault_web_kill(self) -> FaultResult:
        def during() -> None:
            self.procs.signal(self.web["web1"], signal.SIGKILL)
        res = self.measure("web-kill", during, "web1 SIGKILLed")
        self.start_web("web1")
        self.wait_ready()
        return res

    def fault_db_drop(self) -> FaultResult:
        def during() -> None:
            self.net.blackhole("w3", self.db_ip, True)
            time.sleep(20)
            self.net.blackhole("w3", self.db_ip, False)
        return self.measure("db-drop", during, "w3 cannot reach PostgreSQL for 20 s")

    def fault_skew(self) -> FaultResult:
        faketime = shutil.which("faketime")
        if faketime is None:
            return FaultResult("skew", note="skipped: faketime (libfaketime) not installed")
        self.procs.stop(self.workers["w3"])
        self.start_worker("w3", [faketime, "-f", "+30s"])
        time.sleep(3)
        res = self.measure("skew", lambda: None, "w3's clock 30 s ahead (faketime)")
        self.procs.stop(self.workers["w3"])
        self.start_worker("w3")
        return res

    def fault_redis(self) -> FaultResult:
        if self.args.sentinel:
            return FaultResult("redis", note="skipped with --sentinel (see failover)")

        def during() -> None:
            self.procs.stop(self.redis["redis"], timeout=5)
            time.sleep(3)
            self.redis["redis"] = self._redis_server("redis")
        return self.measure("redis", during, "Redis restarted (down ~3 s)")

    def fault_failover(self) -> FaultResult:
        if not self.args.sentinel:
            return FaultResult("failover", note="skipped: needs --sentinel")

        def during() -> None:
            self.procs.signal(self.redis["redis"], signal.SIGKILL)
        return self.measure("failover", during, "Redis primary SIGKILLed; Sentinels promote")


def table(results: list[FaultResult]) -> str:
    head = ("fault", "accepted", "delivered", "lost", "repeats (same key)", "unexplained",
            "not accepted", "all delivered after", "")
    rows = [head]
    for r in results:
        rows.append((r.fault, str(r.accepted), str(r.delivered), str(r.lost),
                     f"{r.repeats} ({r.repeats_same_key})", str(r.unexplained_repeats),
                     ", ".join(f"{k}: {v}" for k, v in r.refused.items()) or "0",
                     f"{r.all_delivered_after_s} s" if r.all_delivered_after_s is not None
                     else "-", r.note))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True))
                     for row in rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--short", action="store_true", help="cut, freeze, web-kill; fewer events")
    ap.add_argument("--faults", help=f"comma-separated, of {', '.join(ALL_FAULTS)}")
    ap.add_argument("--sentinel", action="store_true",
                    help="Redis as primary + replica + 3 Sentinels (adds 'failover')")
    ap.add_argument("--events", type=int, default=None, help="per fault (default 300; 120 short)")
    ap.add_argument("--rate", type=float, default=20.0, help="events per second")
    ap.add_argument("--settle", type=float, default=120.0,
                    help="seconds to wait for every accepted event after a burst")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    ap.add_argument("--json", type=Path, default=RESULTS / "cluster.json")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("bench/cluster.py needs root (ip netns)", file=sys.stderr)
        return 2
    faults = (args.faults.split(",") if args.faults
              else list(SHORT_FAULTS if args.short else ALL_FAULTS))
    unknown = set(faults) - set(ALL_FAULTS)
    if unknown:
        ap.error(f"--faults: unknown {', '.join(sorted(unknown))}")
    if args.events is None:
        args.events = 120 if args.short else 300
    cluster = Cluster(args)
    results: list[FaultResult] = []
    started = time.monotonic()
    try:
        log(f"starting 8 hosts in {cluster.tmp}")
        cluster.up()
        for fault in faults:
            results.append(getattr(cluster, f"fault_{fault.replace('-', '_')}")())
    finally:
        cluster.down()
    text = table(results)
    print(text)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"results": [asdict(r) for r in results],
                                     "sentinel": args.sentinel, "events": args.events,
                                     "rate": args.rate,
                                     "seconds": round(time.monotonic() - started, 1)},
                                    indent=2))
    bad = [r for r in results if r.lost or r.unexplained_repeats]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
