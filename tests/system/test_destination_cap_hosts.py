"""A destination's ``concurrency`` and ``rate_limit`` hold across worker processes (SPEC,
"Connections and destinations": "most calls in flight at once, all workers together";
issues 11 and 16): real ``hookwise worker`` processes, real Redis, a loopback receiver
that counts the requests it is answering at once and when each arrived."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator

import pytest
from sqlmodel import Session, select

from engine.store.models import Execution
from engine.store.rule_files import apply_paths
from tests.servers import HttpSink, Recorded, Reply
from tests.system.test_faults import start_worker, stop_worker, wait_until

pytestmark = pytest.mark.slow

RULE = """
sources: [{{slug: s}}]
destinations: [{{host: 127.0.0.1, {limits}}}]
rules:
  - name: fwd
    source: s
    actions:
      - id: out
        type: webhook
        url: "{url}/out"
        timeout_s: 60
        json: {{n: "{{{{ body.n }}}}"}}
"""


class Counting:
    """Answers after ``delay_s``, counting the requests it is answering at once (those
    ``hang`` picks hang for a minute and are not counted: their caller is gone)."""

    def __init__(self, delay_s: float, hang=lambda rec: False):  # type: ignore[no-untyped-def]
        self.delay_s = delay_s
        self.hang = hang
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.full_at: list[float] = []  # when `cap` were in flight (monotonic)
        self.cap = 0
        self.numbers: list[int] = []

    def __call__(self, rec: Recorded) -> Reply:
        if self.hang(rec):
            return Reply(json={"late": True}, delay=60)
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            if self.cap and self.in_flight >= self.cap:
                self.full_at.append(time.monotonic())
        try:
            time.sleep(self.delay_s)
        finally:
            with self.lock:
                self.in_flight -= 1
                self.numbers.append(int(rec.json()["n"]))
        return Reply(json={"ok": True})


@pytest.fixture
def sink() -> Iterator[HttpSink]:
    with HttpSink(backlog=256) as s:
        yield s


def setup(rt, tmp_path, sink: HttpSink, limits: str) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "r.yaml"
    f.write_text(RULE.format(url=sink.url, limits=limits))
    apply_paths(rt.catalog, [f])


def post(client, numbers) -> None:  # type: ignore[no-untyped-def]
    for n in numbers:
        assert client.post("/hooks/s", json={"n": n}).status_code == 202


def succeeded(rt) -> int:  # type: ignore[no-untyped-def]
    with Session(rt.db) as s:
        return sum(1 for ex in s.exec(select(Execution)) if ex.status == "succeeded")


def test_a_burst_to_a_capped_destination_never_exceeds_its_concurrency_across_workers(  # type: ignore[no-untyped-def]
        rt, env, client, sink, tmp_path):
    setup(rt, tmp_path, sink, "concurrency: 5")
    counting = Counting(0.3)
    sink.handler = counting
    workers = [start_worker(env) for _ in range(3)]
    try:
        post(client, range(200))
        wait_until(lambda: succeeded(rt) == 200, 120, "200 deliveries")
    finally:
        for p in workers:
            stop_worker(p)
    # three processes with a share of 5 each could have 15 out at once
    assert counting.max_in_flight <= 5, f"{counting.max_in_flight} calls in flight at once"
    assert counting.max_in_flight == 5  # and the cap is used, not undershot
    assert sorted(counting.numbers) == list(range(200))  # each delivered, once


def test_a_sigkilled_worker_holding_slots_does_not_leak_them(  # type: ignore[no-untyped-def]
        rt, env, client, sink, tmp_path):
    ttl = 3.0
    env = {**env, "HOOKWISE_DESTINATION_LEASE_S": str(ttl)}
    setup(rt, tmp_path, sink, "concurrency: 5")
    first_five: set[int] = set()
    killed = threading.Event()

    def hang(rec: Recorded) -> bool:  # the first worker's calls: it dies holding them
        if killed.is_set():
            return False
        first_five.add(int(rec.json()["n"]))
        return True

    counting = Counting(0.3, hang=hang)
    counting.cap = 5
    sink.handler = counting
    first = start_worker(env)
    others = []
    try:
        post(client, range(5))
        wait_until(lambda: len(first_five) >= 5, 30, "the first worker to hold 5 slots")
        time.sleep(1.5)  # its leases renewed at least once: a long call keeps its slot
        assert len(first_five) == 5, f"{len(first_five)} calls out under a cap of 5"
        killed.set()
        os.killpg(first.pid, signal.SIGKILL)  # mid-call, no cleanup: its slots stay taken
        first.wait(timeout=5)
        killed_at = time.monotonic()
        others = [start_worker(env) for _ in range(2)]
        # events of their own (the killed worker's five come back through the sweeper)
        post(client, range(5, 60))
        wait_until(lambda: succeeded(rt) == 60, 120, "60 deliveries")
    finally:
        for p in [first, *others]:
            stop_worker(p)
    assert counting.max_in_flight <= 5, f"{counting.max_in_flight} calls in flight at once"
    assert counting.full_at, "the other workers never reached the cap of 5 again"
    back_after = counting.full_at[0] - killed_at
    # the dead worker's leases expire within the TTL (the others wait for that: its
    # slots were taken); the rest is two workers starting and polling (about 2 s)
    assert ttl - 1 <= back_after < ttl + 5, f"the cap was reached again after {back_after:.1f} s"
    assert set(counting.numbers) == set(range(60))


def test_a_rate_limit_holds_across_two_worker_processes(rt, env, client, sink, tmp_path):  # type: ignore[no-untyped-def]
    setup(rt, tmp_path, sink, "rate_limit: {requests: 5, per_s: 1}")
    counting = Counting(0.05)
    sink.handler = counting
    workers = [start_worker(env) for _ in range(2)]
    try:
        time.sleep(2)  # both listening before the burst
        post(client, range(20))
        wait_until(lambda: succeeded(rt) == 20, 90, "20 deliveries")
    finally:
        for p in workers:
            stop_worker(p)
    times = sorted(sink.arrived_at)
    # 5 per second from both processes together (two processes each on its own pace
    # would put 10 into one second); 0.9 s allows for arrival jitter
    busiest = max(sum(1 for u in times if t <= u < t + 0.9) for t in times)
    assert busiest <= 5 + 1, [round(t - times[0], 2) for t in times]
    assert times[-1] - times[0] >= 19 / 5 - 0.5, [round(t - times[0], 2) for t in times]
    assert sorted(counting.numbers) == list(range(20))
