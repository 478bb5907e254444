"""What the benchmark stages share: a fresh Hookwise installation per stage (data dir,
database, Redis, rules, the processes started for it), the loopback sink process, and
the delivery figures read from the sink.

Used by run.py (the stages of issue 6) and receivers.py (slow, hanging and flapping
receivers, issue 11).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import load
from memory import descendants

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
SOURCE = "bench"
HOOK_PATH = f"/hooks/{SOURCE}"
STOP_TIMEOUT_S = 40  # `hookwise serve` gives its children 15 s, a worker finishes its step

RULES_YAML = """
sources:
  - slug: {source}
rules:
  - name: bench-forward
    source: {source}
    when:
      all:
        - {{path: $.body.type, op: eq, value: order.paid}}
        - {{path: $.body.total, op: gt, value: 1}}
    actions:
      - id: out
        type: webhook
        url: http://127.0.0.1:{sink_port}/sink
        json:
          order: "{{{{ body.id }}}}"
          total: "{{{{ body.total }}}}"
          sent: "{{{{ body.sent }}}}"
"""


PASSED_SETTINGS = ("HOOKWISE_WORKER_CONCURRENCY", "HOOKWISE_DESTINATION_CONCURRENCY")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(port: int, path: str = "/healthz", timeout: float = 30,
              proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process {proc.args!r} exited with {proc.returncode}")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", path)
            if c.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"nothing answered on port {port}")


def body_fn(i: int) -> dict[str, Any]:
    return {"type": "order.paid", "id": f"b-{i}", "total": 10 + i % 500, "currency": "usd",
            "customer": {"tier": "gold"}}


# -- one stack: data dir, database, Redis, processes -------------------------------------


class Stack:
    """A fresh Hookwise installation for one stage, and the processes started for it.

    ``rules`` is the rule file to apply (default: RULES_YAML to ``sink_port``). With
    ``embedded_redis=False`` and no --redis-url no Redis is started here: `hookwise
    serve` starts its own (``serve()``)."""

    def __init__(self, args: argparse.Namespace, label: str, sink_port: int | None = None,
                 *, rules: str | None = None, embedded_redis: bool = True):
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix=f"hookwise-bench-{label}-"))
        self.procs: list[subprocess.Popen[bytes]] = []
        self.redis_srv: Any = None
        # a clean Hookwise environment, except the tuning knobs a run compares
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("HOOKWISE_") or k in PASSED_SETTINGS}
        env.update({"HOOKWISE_DATA_DIR": str(self.tmp),
                    "HOOKWISE_EGRESS_ALLOW": "127.0.0.0/8",
                    "HOOKWISE_QUEUE": f"bench-{os.getpid()}-{label}",
                    "PYTHONPATH": os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])})
        if args.database_url:
            _recreate_postgres(args.database_url)
            env["HOOKWISE_DATABASE_URL"] = args.database_url
        if args.redis_url:
            import redis

            redis.Redis.from_url(args.redis_url).flushdb()
            env["HOOKWISE_REDIS_URL"] = args.redis_url
        elif embedded_redis:
            from engine.broker.embedded import EmbeddedRedis

            self.redis_srv = EmbeddedRedis(self.tmp)
            env["HOOKWISE_REDIS_URL"] = self.redis_srv.start()
        self.env = env
        path = self.tmp / "rules.yaml"
        path.write_text(rules or RULES_YAML.format(source=SOURCE, sink_port=sink_port or 9))
        subprocess.run([sys.executable, "-m", "cli", "apply", str(path)], env=env,
                       cwd=ROOT, check=True, capture_output=True)

    @property
    def database_url(self) -> str:
        return self.env.get("HOOKWISE_DATABASE_URL") or f"sqlite:///{self.tmp / 'hookwise.db'}"

    def spawn(self, cmd: list[str]) -> subprocess.Popen[bytes]:
        p = subprocess.Popen(cmd, env=self.env, cwd=ROOT, start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=open(self.tmp / "stderr.log", "ab"))
        self.procs.append(p)
        return p

    def web(self, port: int, cfg: dict[str, Any]) -> subprocess.Popen[bytes]:
        """`hookwise web` on granian (as shipped) or gunicorn gthread, or the same app
        under gunicorn sync."""
        if cfg["class"] in ("granian", "gthread"):
            server = "granian" if cfg["class"] == "granian" else "gunicorn"
            cmd = [sys.executable, "-m", "cli", "web", "--server", server,
                   "--port", str(port), "--workers", str(cfg["workers"]),
                   "--threads", str(cfg["threads"]), "--no-migrate"]
        else:
            cmd = server_cmd(port, cfg, "web:create_app", factory=True)
        p = self.spawn(cmd)
        wait_http(port, proc=p)
        return p

    def worker(self) -> subprocess.Popen[bytes]:
        return self.spawn([sys.executable, "-m", "cli", "worker"])

    def serve(self, port: int, extra: tuple[str, ...] = ()) -> subprocess.Popen[bytes]:
        """`hookwise serve` with its defaults (web + 2 workers + its embedded Redis unless
        --redis-url): up when the web answers and every worker has registered."""
        p = self.spawn([sys.executable, "-m", "cli", "serve", "--port", str(port), *extra])
        wait_http(port, timeout=60, proc=p)
        wait_workers(self.redis_url(), workers=_workers_of(extra), timeout=60, proc=p)
        return p

    def redis_url(self) -> str:
        if "HOOKWISE_REDIS_URL" in self.env:
            return self.env["HOOKWISE_REDIS_URL"]
        from engine.broker.embedded import url_for

        return url_for(self.tmp)

    def stop(self, p: subprocess.Popen[bytes]) -> None:
        """SIGTERM to the group we started (gunicorn + its workers; or `hookwise serve`,
        which stops its children); after STOP_TIMEOUT_S, SIGKILL to it and to whatever
        still runs below it (serve's children live in sessions of their own)."""
        below = [(pid, _started(pid)) for pid in descendants(p.pid)]
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        for pid, started in below:  # processes this stack started, by pid
            _kill_if_left(pid, started)
        if p in self.procs:
            self.procs.remove(p)

    def close(self) -> None:
        for p in list(self.procs):
            self.stop(p)
        if self.redis_srv is not None:
            self.redis_srv.stop()
        if not self.args.keep_tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)


def _workers_of(serve_args: tuple[str, ...]) -> int:
    args = list(serve_args)
    return int(args[args.index("--workers") + 1]) if "--workers" in args else 2


def _started(pid: int) -> str | None:
    """The process's start time (field 22 of /proc/<pid>/stat): with the pid, it names
    one process, not a later one that got the pid again."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[19]
    except (OSError, IndexError):
        return None


def _kill_if_left(pid: int, started: str | None) -> None:
    if started is None or _started(pid) != started:
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def wait_workers(redis_url: str, workers: int, timeout: float,
                 proc: subprocess.Popen[bytes] | None = None) -> None:
    """Until ``workers`` RQ workers have registered (they import and connect first)."""
    import redis
    from rq import Worker

    deadline = time.monotonic() + timeout
    conn = redis.Redis.from_url(redis_url)
    try:
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"process {proc.args!r} exited with {proc.returncode}")
            try:
                if Worker.count(connection=conn) >= workers:
                    return
            except redis.RedisError:
                pass
            time.sleep(0.2)
    finally:
        conn.close()
    raise RuntimeError(f"{workers} workers did not register within {timeout} s")


def server_cmd(port: int, cfg: dict[str, Any], app: str, *, factory: bool = False
               ) -> list[str]:
    """The server for a setting (for the no-op app, and Hookwise under gunicorn sync):
    gunicorn with the options `hookwise web` sets (web/server.py), or granian's WSGI
    server with WORKERS processes and THREADS blocking threads each. ``app`` is module:name;
    ``factory``: call it to get the app."""
    if cfg["class"] == "granian":
        cmd = [sys.executable, "-m", "granian", "--interface", "wsgi", "--host", "127.0.0.1",
               "--port", str(port), "--workers", str(cfg["workers"]),
               "--blocking-threads", str(cfg["threads"]), "--log-level", "warning",
               "--working-dir", str(BENCH)]
        return [*cmd, "--factory", app] if factory else [*cmd, app]
    return gunicorn_cmd(port, cfg, f"{app}()" if factory else app)


def gunicorn_cmd(port: int, cfg: dict[str, Any], app: str) -> list[str]:
    """gunicorn with the options `hookwise web` sets (web/server.py)."""
    cmd = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}",
           "--workers", str(cfg["workers"]), "--worker-class", cfg["class"],
           "--keep-alive", "5", "--timeout", "60", "--graceful-timeout", "10",
           "--log-level", "warning", "--pythonpath", f"{ROOT},{BENCH}"]
    if cfg["class"] == "gthread":
        cmd += ["--threads", str(cfg["threads"])]
    return [*cmd, app]


def _recreate_postgres(url: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    u = make_url(url)
    name = u.database or ""
    if "bench" not in name:
        raise SystemExit(f"--database-url: refusing to drop {name!r} (its name must "
                         "contain 'bench')")
    admin = create_engine(u.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        c.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()


def query(stack: Stack, sql: str) -> list[tuple[Any, ...]]:
    """Rows of a read-only query against the stack's database."""
    from sqlalchemy import create_engine, text

    eng = create_engine(stack.database_url)
    try:
        with eng.connect() as c:
            return [tuple(r) for r in c.execute(text(sql)).all()]
    finally:
        eng.dispose()


def count_events(stack: Stack) -> int | None:
    try:
        return int(query(stack, "select count(*) from events")[0][0] or 0)
    except Exception:
        return None


# -- sink --------------------------------------------------------------------------------


class SinkProc:
    """bench/sink.py in its own process, on a free port (or ``port``)."""

    def __init__(self, *, latency_ms: float = 0, hang: bool = False,
                 port: int | None = None) -> None:
        self.port = port or free_port()
        cmd = [sys.executable, str(BENCH / "sink.py"), str(self.port)]
        if latency_ms:
            cmd += ["--latency-ms", str(latency_ms)]
        if hang:
            cmd.append("--hang")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, start_new_session=True)
        assert self.proc.stdout is not None
        self.proc.stdout.readline()  # "ready"

    def _call(self, path: str, data: bytes | None = None) -> bytes:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data,
                                     method="POST" if data is not None else "GET")
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.read()  # type: ignore[no-any-return]

    def stats(self, since: int = 0) -> dict[str, Any]:
        return json.loads(self._call(f"/_stats?since={since}"))  # type: ignore[no-any-return]

    def count(self, field: str = "count") -> int:
        """Requests so far (or ``distinct`` keys); -1 while the sink is down."""
        try:
            return int(json.loads(self._call("/_stats?since=999999999"))[field])
        except (urllib.error.URLError, ConnectionError):
            return -1

    def reset(self) -> None:
        self._call("/_reset", b"")

    def down(self, seconds: float) -> None:
        """Refuse connections for ``seconds``, then serve again (sink.py's /_down)."""
        self._call(f"/_down?s={seconds}", b"")

    def wait_for(self, n: int, timeout: float, field: str = "count") -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.count(field) >= n:
                return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


def burst_figures(sink: SinkProc, n: int, post: dict[str, Any],
                  timeout: float) -> dict[str, Any]:
    """Wait up to ``timeout`` for ``n`` arrivals, then: delivered/s = arrivals ÷ (last
    arrival − first send), drain/s = arrivals ÷ (last − first arrival), post→arrival
    p50/p99 of the arrivals."""
    ok = sink.wait_for(n, timeout)
    arrivals = sink.stats()["arrivals"]
    lat = [(a - s) * 1000 for a, s in arrivals if s is not None]
    first_sent = min((s for _, s in arrivals if s is not None), default=0.0)
    first = min((a for a, _ in arrivals), default=0.0)
    last = max((a for a, _ in arrivals), default=0.0)
    return {
        "events": n, "delivered": len(arrivals), "complete": ok,
        "post_rps": post["rps"], "post_errors": post["errors"],
        "delivered_per_s": round(len(arrivals) / max(last - first_sent, 1e-6), 1),
        "drain_per_s": round(len(arrivals) / max(last - first, 1e-6), 1),
        "p50_ms": load._r(load.pct(lat, 0.5)), "p99_ms": load._r(load.pct(lat, 0.99)),
    }
