"""A destination's configured ``concurrency`` counts the calls of every worker (SPEC,
"Connections and destinations"), through slots leased in Redis
(``engine.outbound.leases``): real Redis, the real in-process worker, a loopback
receiver. The multi-process runs are tests/system/test_destination_cap_hosts.py."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlmodel import Session, select

from engine.outbound.guard import DestinationGuard
from engine.outbound.leases import SLOTS_KEY, LeaseBook
from engine.store.models import Execution
from engine.store.rule_files import apply_paths
from tests.servers import HttpSink, Reply

RULE = """
sources: [{{slug: s}}]
destinations: [{{host: 127.0.0.1, concurrency: 5}}]
rules:
  - name: fwd
    source: s
    actions:
      - id: out
        type: webhook
        url: "{url}/out"
        json: {{n: "{{{{ body.n }}}}"}}
"""


@pytest.fixture
def sink() -> Iterator[HttpSink]:
    with HttpSink(backlog=128) as s:
        yield s


def test_slots_another_worker_holds_count_against_the_cap(rt, client, work, sink, tmp_path):  # type: ignore[no-untyped-def]
    f = tmp_path / "r.yaml"
    f.write_text(RULE.format(url=sink.url))
    apply_paths(rt.catalog, [f])
    sink.respond("/out", Reply(json={"ok": True}, delay=0.3))
    destination = f"http://127.0.0.1:{sink.port}"
    # another worker (its own lease book, the same Redis) has 3 of the 5 calls out
    other = LeaseBook(rt.redis, ttl_s=30)
    guard = DestinationGuard(rt.redis)
    held = []
    for _ in range(3):
        a = guard.admit(destination, slots=5, lease=other.new_id())
        assert a.verdict == "ok" and a.lease is not None
        other.took(destination, a.lease)
        held.append(a.lease)
    for n in range(12):
        assert client.post("/hooks/s", json={"n": n}).status_code == 202

    def done() -> bool:
        with Session(rt.db) as s:
            exs = list(s.exec(select(Execution)))
        return len(exs) == 12 and all(ex.status == "succeeded" for ex in exs)

    work(until=done, timeout=60)
    # this worker's share alone would be 5
    assert sink.max_in_flight <= 2, f"{sink.max_in_flight} in flight beside 3 held elsewhere"
    assert sorted(int(r.json()["n"]) for r in sink.requests) == list(range(12))
    assert rt.redis.zcard(SLOTS_KEY.format(destination)) == 3  # every slot of ours back
    for lease in held:
        other.give_back(destination, lease)
    assert rt.redis.zcard(SLOTS_KEY.format(destination)) == 0


def test_a_renewed_lease_outlives_its_ttl_and_an_abandoned_one_expires(rt):  # type: ignore[no-untyped-def]
    dest = "http://leases.example:80"
    guard = DestinationGuard(rt.redis)
    book = LeaseBook(rt.redis, ttl_s=1.0)
    kept = guard.admit(dest, slots=2, lease=book.new_id(), lease_ttl_s=1.0)
    book.took(dest, kept.lease)  # type: ignore[arg-type]
    # a worker that took a slot and died: nobody renews it
    dead = guard.admit(dest, slots=2, lease="dead-worker-1", lease_ttl_s=1.0)
    assert kept.lease and dead.lease == "dead-worker-1"
    full = guard.admit(dest, slots=2, lease="third", lease_ttl_s=1.0)
    assert full.verdict == "full" and full.lease is None and "concurrency of 2" in full.reason
    time.sleep(2.5)  # past the TTL: the renewed lease holds, the dead one is gone
    again = guard.admit(dest, slots=2, lease="fourth", lease_ttl_s=1.0)
    assert again.verdict == "ok" and again.lease == "fourth"
    assert guard.admit(dest, slots=2, lease="fifth", lease_ttl_s=1.0).verdict == "full"
    book.give_back(dest, kept.lease)  # type: ignore[arg-type]
    assert guard.admit(dest, slots=2, lease="sixth", lease_ttl_s=1.0).verdict == "ok"
