"""A worker SIGKILLed with hundreds of deliveries in flight (issue 11): a real
``python -m cli worker`` with 200 delivery threads, a receiver that answers after 2 s.
Every event is delivered at least once after a new worker takes over, and every repeat
of a step carries the ``Idempotency-Key`` of its first delivery, so the receiver can drop
it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator

import pytest
from sqlmodel import Session, select

from engine.store.models import Execution
from engine.store.rule_files import apply_paths
from tests.servers import HttpSink, Reply

pytestmark = pytest.mark.slow

EVENTS = 200
REPLY_DELAY_S = 2.0
RECOVERY_TIMEOUT_S = 90.0  # the dead worker's liveness key lapses, then a sweep re-queues

RULE = """
sources: [{{slug: s}}]
rules:
  - name: fwd
    source: s
    actions:
      - {{id: out, type: webhook, url: "{url}/out", json: {{n: "{{{{ body.n }}}}"}}}}
"""


def start_worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "cli", "worker"],
                            env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def kill_group(p: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    p.wait(timeout=10)


def stop_worker(p: subprocess.Popen[bytes]) -> None:
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
    kill_group(p)


def wait_until(predicate, timeout: float, what) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for "
                        f"{what() if callable(what) else what}")
        time.sleep(0.05)


@pytest.fixture
def sink() -> Iterator[HttpSink]:
    with HttpSink(backlog=1024) as s:  # hundreds of connections at once
        yield s


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_sigkill_with_hundreds_in_flight_redelivers_with_the_same_idempotency_key(  # type: ignore[no-untyped-def]
        rt, env, client, sink, tmp_path):
    f = tmp_path / "r.yaml"
    f.write_text(RULE.format(url=sink.url))
    apply_paths(rt.catalog, [f])
    sink.respond("/out", Reply(json={"ok": True}, delay=REPLY_DELAY_S))
    worker_env = {**env, "HOOKWISE_WORKER_CONCURRENCY": "200",
                  # one destination may use every thread here (default share: 32)
                  "HOOKWISE_DESTINATION_CONCURRENCY": "200"}
    for n in range(EVENTS):
        assert client.post("/hooks/s", json={"n": n}).status_code == 202

    first = start_worker(worker_env)
    second = None
    try:
        wait_until(lambda: sink.in_flight >= 100, 60,
                   lambda: f"100 requests in flight (max so far {sink.max_in_flight}, "
                           f"{len(sink.requests)} received)")
        kill_group(first)  # no cleanup runs, as in a container kill
        killed_at = time.monotonic()
        # a request that came less than REPLY_DELAY_S before the kill had no answer yet
        unanswered = {i for i, t in enumerate(sink.arrived_at)
                      if t > killed_at - REPLY_DELAY_S + 0.1}
        assert len(unanswered) >= 90, f"only {len(unanswered)} calls were cut off"

        second = start_worker(worker_env)

        def statuses() -> Counter[str]:
            with Session(rt.db) as s:
                return Counter(getattr(ex.status, "value", ex.status)
                               for ex in s.exec(select(Execution)))

        wait_until(lambda: statuses().get("succeeded", 0) == EVENTS, RECOVERY_TIMEOUT_S,
                   lambda: f"every execution to succeed after the kill; executions: "
                           f"{dict(statuses())}, {len(sink.requests)} requests received")
    finally:
        for p in (first, second):
            if p is not None:
                stop_worker(p)

    # a call the kill cut off mid-body reached the receiver truncated: not a delivery
    truncated = {i for i, r in enumerate(sink.requests)
                 if len(r.body) < int(r.headers.get("content-length") or 0)}
    requests = [r for i, r in enumerate(sink.requests) if i not in truncated]
    assert len(truncated) < 20, f"{len(truncated)} truncated requests"
    by_n: dict[int, set[str]] = defaultdict(set)
    by_key: dict[str, list[int]] = defaultdict(list)
    for r in requests:
        assert r.path == "/out"
        n, key = int(r.json()["n"]), r.headers["idempotency-key"]
        by_n[n].add(key)
        by_key[key].append(n)
    assert sorted(by_n) == list(range(EVENTS)), "an event was never delivered"
    # one key per execution's step, whichever attempt carried it
    assert all(len(keys) == 1 for keys in by_n.values()), \
        {n: keys for n, keys in by_n.items() if len(keys) > 1}
    assert all(len(set(ns)) == 1 for ns in by_key.values())
    assert len(by_key) == EVENTS
    # every call the kill cut off was made again, under the key of the first
    repeated = {int(sink.requests[i].json()["n"]) for i in unanswered - truncated}
    counts = Counter(int(r.json()["n"]) for r in requests)
    assert all(counts[n] >= 2 for n in repeated), \
        sorted(n for n in repeated if counts[n] < 2)
