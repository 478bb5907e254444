"""Chaos run: the whole system under faults, then a reconciliation of what was accepted
against what was delivered.

On loopback: ``hookwise web`` (granian) and N ``hookwise worker`` processes, a fresh
PostgreSQL database (``hookwise_chaos_<pid>``, dropped afterwards; SQLite with
``--db sqlite`` or when PostgreSQL is unreachable), and an embedded redis-server started
here (AOF on) so it can be restarted. A sink fails ~30% of calls — half 500s, half
timeouts (it answers after the step's 1 s timeout) — decided per (Idempotency-Key,
attempt) from a seed, and records every arrival. The rule's webhook step retries
quickly (10 attempts, exponential 0.2 s → 2 s).

Concurrent clients post the events (retrying a post that got no 2xx; the source dedups
by ``$.body.id``, so a retried post is never a second event); meanwhile a random worker
is SIGKILLed every few seconds and replaced, and Redis is restarted once (SHUTDOWN, a
short outage, start again on the same data dir). Then the script waits for the drain
(every execution finished) and reconciles:

- accepted: posts answered 2xx (distinct event ids); stored: events in the database
- delivered: distinct idempotency keys (and event ids) the sink answered 200
- lost: accepted but never delivered — must be 0
- duplicates: keys answered 200 more than once; each is *explained* when a worker was
  killed or Redis restarted between the first success and the repeat (the step's
  result was not recorded), else *unexplained*
- time to drain (from the last post, and in total)

Usage: python bench/chaos.py [--events 10000] [--workers 4] [--kills N] [--kill-every S]
       [--redis-restarts 1] [--db postgresql|sqlite] [--seed 1]
Prints a table, writes bench/results/chaos.json (or --out), exits 1 if lost > 0 or the
drain did not finish in time.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
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
from collections import Counter, defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG_ADMIN = os.environ.get("HOOKWISE_TEST_DATABASE_URL",
                          "postgresql+psycopg2://postgres@127.0.0.1:5432/test")
STEP_TIMEOUT_S = 1.0
SINK_LATE_S = 1.6  # a "timeout" answer comes after the step gave up

RULE = """
sources:
  - slug: chaos
    dedup: {{path: $.body.id}}
rules:
  - name: chaos-forward
    source: chaos
    actions:
      - id: deliver
        type: webhook
        url: http://127.0.0.1:{port}/sink
        timeout_s: {timeout}
        json: {{id: "{{{{ body.id }}}}"}}
        retry: {{max_attempts: 10, backoff: exponential, initial_s: 0.2, max_s: 2}}
"""


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# -- the sink ---------------------------------------------------------------------------


class Sink:
    """Fails ~fail_rate of calls, deterministically per (key, attempt); records all."""

    def __init__(self, seed: int, fail_rate: float):
        self.seed = seed
        self.fail_rate = fail_rate
        self.lock = threading.Lock()
        self.attempts: Counter[str] = Counter()
        # key -> [(t, outcome, event id)]; outcome ok | 500 | timeout
        self.arrivals: dict[str, list[tuple[float, str, str]]] = defaultdict(list)
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                try:
                    event_id = str(json.loads(raw or b"{}").get("id"))
                except ValueError:
                    event_id = "?"
                key = self.headers.get("Idempotency-Key", "?")
                outcome = sink.decide(key)
                with sink.lock:
                    sink.arrivals[key].append((time.monotonic(), outcome, event_id))
                if outcome == "timeout":
                    time.sleep(SINK_LATE_S)
                status = 500 if outcome == "500" else 200
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"{}")
                except OSError:
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def decide(self, key: str) -> str:
        with self.lock:
            attempt = self.attempts[key]
            self.attempts[key] += 1
        h = int.from_bytes(hashlib.sha256(f"{self.seed}|{key}|{attempt}".encode()).digest()[:8],
                           "big") / 2**64
        if h < self.fail_rate / 2:
            return "500"
        if h < self.fail_rate:
            return "timeout"
        return "ok"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- processes --------------------------------------------------------------------------


def hookwise(args: list[str], env: dict[str, str], logfile: Path) -> subprocess.Popen[bytes]:
    out = open(logfile, "ab")  # noqa: SIM115 - the child keeps it
    return subprocess.Popen([sys.executable, "-m", "cli", *args], env=env, cwd=ROOT,
                            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop_procs(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + 20
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", "/healthz")
            if c.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit("web did not start")


def wait_workers(redis_url: str, n: int, timeout: float = 90) -> None:
    """Until n RQ workers have registered (they import and connect first)."""
    import redis
    from rq import Worker

    conn = redis.Redis.from_url(redis_url)
    deadline = time.monotonic() + timeout
    try:
        while Worker.count(connection=conn) < n:
            if time.monotonic() > deadline:
                raise SystemExit(f"{n} workers did not start within {timeout} s")
            time.sleep(0.2)
    finally:
        conn.close()


# -- databases --------------------------------------------------------------------------


def pg_available() -> bool:
    import sqlalchemy as sa

    try:
        eng = sa.create_engine(PG_ADMIN, connect_args={"connect_timeout": 3})
        with eng.connect() as c:
            c.execute(sa.text("SELECT 1"))
        eng.dispose()
        return True
    except Exception:
        return False


def pg_create(name: str) -> str:
    import sqlalchemy as sa

    eng = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with eng.connect() as c:
        c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    eng.dispose()
    return PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"


def pg_drop(name: str) -> None:
    import sqlalchemy as sa

    eng = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with eng.connect() as c:
        c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    eng.dispose()


# -- the run ----------------------------------------------------------------------------


class Chaos:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.rng = random.Random(args.seed)
        self.kill_times: list[float] = []
        self.redis_restart_times: list[tuple[float, float]] = []  # (down, up)
        self.worker_exits = 0  # workers that died without being killed by us
        self.lock = threading.Lock()
        self.posted = 0
        self.accepted: dict[str, str] = {}  # body id -> event id
        self.post_failures = 0  # answers that were not 2xx (retried)
        self.stop = threading.Event()
        self.sink: Sink | None = None

    # -- clients ------------------------------------------------------------------------
    def post_all(self, port: int) -> None:
        ids = iter(range(self.args.events))
        ids_lock = threading.Lock()

        def client() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            while True:
                with ids_lock:
                    n = next(ids, None)
                if n is None:
                    return
                body = json.dumps({"id": f"e{n}"})
                for _ in range(60):  # until a 2xx (the source dedups by id)
                    try:
                        conn.request("POST", "/hooks/chaos", body,
                                     {"Content-Type": "application/json"})
                        r = conn.getresponse()
                        data = r.read()
                        if r.status in (200, 202):
                            with self.lock:
                                self.accepted[f"e{n}"] = json.loads(data)["event_id"]
                            break
                    except (OSError, http.client.HTTPException, ValueError):
                        conn.close()
                        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                    with self.lock:
                        self.post_failures += 1
                    time.sleep(0.5)
                with self.lock:
                    self.posted += 1

        threads = [threading.Thread(target=client) for _ in range(self.args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    # -- faults -------------------------------------------------------------------------
    def chaos(self, workers: list[subprocess.Popen[bytes]], spawn: Any, redis_srv: Any) -> None:
        kills_left = self.args.kills if self.args.kills >= 0 else 10**9
        restarts_left = self.args.redis_restarts
        next_kill = time.monotonic() + self.args.kill_every
        while not self.stop.wait(0.2):
            for i, p in enumerate(workers):  # a supervisor: replace dead workers
                if p.poll() is not None:
                    self.worker_exits += 1
                    log(f"worker {p.pid} exited by itself ({p.returncode}); replacing it")
                    workers[i] = spawn()
            if kills_left > 0 and time.monotonic() >= next_kill:
                i = self.rng.randrange(len(workers))
                victim = workers[i]
                os.killpg(victim.pid, signal.SIGKILL)
                victim.wait()
                self.kill_times.append(time.monotonic())
                workers[i] = spawn()
                kills_left -= 1
                next_kill = time.monotonic() + self.args.kill_every
                log(f"SIGKILLed worker {victim.pid}; started {workers[i].pid}")
            if restarts_left > 0 and self.delivered() >= self.args.events // 3:
                down = time.monotonic()
                redis_srv.stop()
                log("Redis stopped (SHUTDOWN)")
                time.sleep(self.args.redis_down_s)
                redis_srv.start()
                self.redis_restart_times.append((down, time.monotonic()))
                restarts_left -= 1
                log(f"Redis started again on the same data dir (AOF) after "
                    f"{time.monotonic() - down:.1f} s")

    def delivered(self) -> int:
        assert self.sink is not None
        with self.sink.lock:
            return sum(1 for a in self.sink.arrivals.values() if any(o == "ok" for _, o, _ in a))


def open_work(db_url: str) -> tuple[int, int, int]:
    """(events not processed, executions not finished, executions total)."""
    import sqlalchemy as sa

    eng = sa.create_engine(db_url)
    try:
        with eng.connect() as c:
            pending = c.execute(sa.text(
                "SELECT count(*) FROM events WHERE status = 'pending'"
            )).scalar_one()
            open_ex = c.execute(sa.text(
                "SELECT count(*) FROM executions WHERE status NOT IN ('succeeded', 'failed')"
            )).scalar_one()
            total = c.execute(sa.text("SELECT count(*) FROM executions")).scalar_one()
    finally:
        eng.dispose()
    return int(pending), int(open_ex), int(total)


def db_summary(db_url: str) -> dict[str, Any]:
    import sqlalchemy as sa

    eng = sa.create_engine(db_url)
    try:
        with eng.connect() as c:
            events = c.execute(sa.text("SELECT count(*) FROM events")).scalar_one()
            by_status = dict(c.execute(sa.text(
                "SELECT status, count(*) FROM executions GROUP BY status")).all())
            attempts = c.execute(sa.text(
                "SELECT coalesce(sum(attempts), 0) FROM step_runs")).scalar_one()
            failed = [r[0] for r in c.execute(sa.text(
                "SELECT error FROM executions WHERE status = 'failed' LIMIT 5")).all()]
            keys = {f"{ex}:{step}": (ev, status) for ex, step, ev, status in c.execute(sa.text(
                "SELECT s.execution_id, s.step_id, e.event_id, s.status FROM step_runs s "
                "JOIN executions e ON e.id = s.execution_id")).all()}
    finally:
        eng.dispose()
    return {"events": int(events), "executions": {str(k): int(v) for k, v in by_status.items()},
            "step_attempts": int(attempts), "failed_examples": failed, "keys": keys}


def reconcile(chaos: Chaos, sink: Sink, db: dict[str, Any]) -> dict[str, Any]:
    faults = sorted(chaos.kill_times + [t for pair in chaos.redis_restart_times for t in pair])
    delivered_keys: set[str] = set()
    delivered_ids: set[str] = set()
    explained = unexplained = 0
    examples: list[dict[str, Any]] = []
    outcomes: Counter[str] = Counter()
    for key, arrivals in sink.arrivals.items():
        ok = [(t, eid) for t, outcome, eid in arrivals if outcome == "ok"]
        for _, outcome, _ in arrivals:
            outcomes[outcome] += 1
        if not ok:
            continue
        delivered_keys.add(key)
        delivered_ids.add(ok[0][1])
        for (t1, _), (t2, _) in zip(ok, ok[1:], strict=False):
            # a repeat after a success is explained by a fault between the two
            if any(t1 - 1.0 <= f <= t2 for f in faults):
                explained += 1
            else:
                unexplained += 1
                examples.append({"key": key, "arrivals": [(round(t, 3), o) for t, o, _
                                                          in arrivals]})
    accepted_ids = set(chaos.accepted)
    lost_ids = sorted(accepted_ids - delivered_ids)
    key_for_event = {ev: k for k, (ev, _) in db["keys"].items()}
    exhausted = [i for i in lost_ids
                 if db["keys"].get(key_for_event.get(chaos.accepted[i], ""), (None, ""))[1]
                 == "failed"]
    return {
        "events_requested": chaos.args.events,
        "events_accepted": len(accepted_ids),
        "post_retries": chaos.post_failures,
        "events_stored": db["events"],
        "executions": db["executions"],
        "step_attempts": db["step_attempts"],
        "sink_arrivals": sum(outcomes.values()),
        "sink_outcomes": dict(outcomes),
        "keys_delivered": len(delivered_keys),
        "events_delivered": len(delivered_ids & accepted_ids),
        "lost": len(lost_ids),
        "lost_examples": lost_ids[:10],
        "lost_after_exhausting_retries": len(exhausted),
        "duplicates_explained": explained,
        "duplicates_unexplained": unexplained,
        "unexplained_examples": examples[:5],
        "worker_kills": len(chaos.kill_times),
        "worker_exits_unplanned": chaos.worker_exits,
        "redis_restarts": len(chaos.redis_restart_times),
        "failed_examples": db["failed_examples"],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=10_000)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--web-workers", type=int, default=2)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--kills", type=int, default=-1, help="worker kills (-1: until drained)")
    ap.add_argument("--kill-every", type=float, default=4.0, help="seconds between kills")
    ap.add_argument("--redis-restarts", type=int, default=1, choices=(0, 1))
    ap.add_argument("--redis-down-s", type=float, default=2.0)
    ap.add_argument("--fail-rate", type=float, default=0.3)
    ap.add_argument("--db", choices=("postgresql", "sqlite", "auto"), default="auto")
    ap.add_argument("--drain-timeout", type=float, default=900)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", action="store_true", help="keep the data dir and logs")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "chaos.json"))
    args = ap.parse_args(argv)

    from engine.broker.embedded import EmbeddedRedis

    use_pg = args.db == "postgresql" or (args.db == "auto" and pg_available())
    tmp = Path(tempfile.mkdtemp(prefix="hookwise-chaos-"))
    pg_name = f"hookwise_chaos_{os.getpid()}"
    db_url = pg_create(pg_name) if use_pg else f"sqlite:///{tmp / 'hookwise.db'}"
    redis_srv = EmbeddedRedis(tmp / "redis")
    # the rig's own settings, but tuning knobs pass through (the CI test shortens the
    # sweeper's pending threshold)
    keep = ("HOOKWISE_SWEEP_PENDING_S",)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKWISE_") or k in keep}
    env.update({
        "HOOKWISE_DATA_DIR": str(tmp), "HOOKWISE_DATABASE_URL": db_url,
        "HOOKWISE_REDIS_URL": redis_srv.start(), "HOOKWISE_SECRET_KEY": "chaos",
        "HOOKWISE_EGRESS_ALLOW": "127.0.0.0/8", "HOOKWISE_QUEUE": "chaos",
    })
    sink = Sink(args.seed, args.fail_rate)
    chaos = Chaos(args)
    chaos.sink = sink
    procs: list[subprocess.Popen[bytes]] = []
    workers: list[subprocess.Popen[bytes]] = []
    results: dict[str, Any] = {}
    drained = False
    t_start = time.monotonic()
    try:
        (tmp / "rule.yaml").write_text(RULE.format(port=sink.port, timeout=STEP_TIMEOUT_S))
        for cmd in (["db", "upgrade"], ["apply", str(tmp / "rule.yaml")]):
            subprocess.run([sys.executable, "-m", "cli", *cmd], env=env, cwd=ROOT,
                           check=True, capture_output=True)
        port = free_port()
        web = hookwise(["web", "--port", str(port), "--workers", str(args.web_workers),
                        "--no-migrate"], env, tmp / "web.log")
        procs.append(web)
        wait_ready(port)

        def spawn() -> subprocess.Popen[bytes]:
            return hookwise(["worker"], env, tmp / "workers.log")

        workers.extend(spawn() for _ in range(args.workers))
        wait_workers(env["HOOKWISE_REDIS_URL"], args.workers)
        log(f"{'PostgreSQL' if use_pg else 'SQLite'}, {args.workers} workers, "
            f"{args.events} events, sink fails {args.fail_rate:.0%}")
        chaos_thread = threading.Thread(target=chaos.chaos, args=(workers, spawn, redis_srv),
                                        daemon=True)
        chaos_thread.start()
        t_post = time.monotonic()
        chaos.post_all(port)
        t_posted = time.monotonic()
        log(f"posted: {len(chaos.accepted)} accepted in {t_posted - t_post:.1f} s "
            f"({chaos.post_failures} posts retried)")

        deadline = time.monotonic() + args.drain_timeout
        last_report = 0.0
        while time.monotonic() < deadline:
            try:
                pending, open_ex, total = open_work(db_url)
            except Exception as exc:  # the database is fine; this is just a probe
                log(f"probe failed: {exc}")
                time.sleep(1)
                continue
            restarted = len(chaos.redis_restart_times) >= args.redis_restarts
            if pending == 0 and open_ex == 0 and total >= len(chaos.accepted) and restarted:
                drained = True
                break
            if time.monotonic() - last_report > 10:
                log(f"draining: {pending} events unmatched, {open_ex} executions open, "
                    f"{total} executions")
                last_report = time.monotonic()
            time.sleep(0.5)
        t_drained = time.monotonic()
        chaos.stop.set()
        chaos_thread.join(timeout=30)
        log("drained" if drained else "drain TIMED OUT")
        time.sleep(STEP_TIMEOUT_S + SINK_LATE_S)  # let late sink answers land
        results = reconcile(chaos, sink, db_summary(db_url))
        results.update({
            "database": "postgresql" if use_pg else "sqlite",
            "workers": args.workers,
            "fail_rate": args.fail_rate,
            "seed": args.seed,
            "drained": drained,
            "post_s": round(t_posted - t_post, 1),
            "drain_after_posting_s": round(t_drained - t_posted, 1),
            "total_s": round(t_drained - t_start, 1),
        })
    finally:
        chaos.stop.set()
        stop_procs([*workers, *procs])
        redis_srv.stop()
        sink.stop()
        if use_pg:
            try:
                pg_drop(pg_name)
            except Exception as exc:
                log(f"could not drop {pg_name}: {exc}")
        if results.get("lost") or not drained or args.keep:
            log(f"logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    width = max(len(k) for k in results)
    print("\nHookwise chaos (" + time.strftime("%Y-%m-%d %H:%M") + ")")
    for k, v in results.items():
        if k.endswith("examples") and not v:
            continue
        print(f"  {k:<{width}}  {v}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str))
    return 1 if results.get("lost") or not drained else 0


if __name__ == "__main__":
    raise SystemExit(main())
