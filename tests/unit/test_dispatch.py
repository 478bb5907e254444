"""The Dispatcher alone (engine/run/dispatch.py): delivery threads, destination shares,
parked chains, duplicates, stop and back-pressure — with a fake ``run`` made of events,
no services.

The fake runner behaves like ``ChainRunner.run`` with a gate: a work item whose
execution id names a destination (``"d/3"`` goes to ``d``) takes a slot with
``enter(d)``; when refused it answers ``d`` (parked), else it "calls" — blocks until the
test lets it go — and gives the slot back with ``leave(d)``.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator

import pytest

from engine.run.dispatch import Dispatcher, Work

TIMEOUT_S = 10.0


def eventually(predicate: Callable[[], bool], what: str, timeout: float = TIMEOUT_S) -> None:
    """Wait for a state the dispatcher's own threads reach (no fixed sleeps)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.002)


class FakeChains:
    """``run`` for a Dispatcher: records who runs, how many at once, and per destination."""

    def __init__(self) -> None:
        self.dispatcher: Dispatcher | None = None
        self.cond = threading.Condition()
        self.released: set[str] = set()  # ids allowed to finish their call
        self.release_all = False
        self.runs: Counter[str] = Counter()  # run() calls per id
        self.order: list[str] = []  # ids as their run() started
        self.entered: list[str] = []  # ids as they got a destination slot
        self.done: list[str] = []  # ids whose call ended
        self.running = 0
        self.max_running = 0
        self.inside: Counter[str] = Counter()
        self.max_inside: Counter[str] = Counter()
        self.fail: set[str] = set()  # ids whose run raises

    def release(self, *ids: str) -> None:
        with self.cond:
            self.released.update(ids)
            self.cond.notify_all()

    def release_everything(self) -> None:
        with self.cond:
            self.release_all = True
            self.cond.notify_all()

    def wait(self, predicate: Callable[[], bool], what: str) -> None:
        with self.cond:
            assert self.cond.wait_for(predicate, TIMEOUT_S), f"timed out waiting for {what}"

    def __call__(self, work: Work) -> str | None:
        eid = work.execution_id
        dest = eid.split("/")[0] if "/" in eid else None
        with self.cond:
            self.runs[eid] += 1
            self.order.append(eid)
            self.running += 1
            self.max_running = max(self.max_running, self.running)
            self.cond.notify_all()
        try:
            if eid in self.fail:
                raise RuntimeError(f"a bug while running {eid}")
            assert self.dispatcher is not None
            if dest is not None and not self.dispatcher.enter(dest):
                return dest  # parked: the dispatcher runs it again when a slot is left
            try:
                with self.cond:
                    if dest is not None:
                        self.entered.append(eid)
                        self.inside[dest] += 1
                        self.max_inside[dest] = max(self.max_inside[dest], self.inside[dest])
                    self.cond.notify_all()
                    self.cond.wait_for(lambda: self.release_all or eid in self.released)
                    if dest is not None:
                        self.inside[dest] -= 1
                    self.done.append(eid)
                    self.cond.notify_all()
            finally:
                if dest is not None:
                    self.dispatcher.leave(dest)
            return None
        finally:
            with self.cond:
                self.running -= 1
                self.cond.notify_all()


@pytest.fixture
def make() -> Iterator[Callable[..., tuple[Dispatcher, FakeChains]]]:
    made: list[tuple[Dispatcher, FakeChains]] = []

    def _make(concurrency: int, share: int | None = None) -> tuple[Dispatcher, FakeChains]:
        chains = FakeChains()
        d = Dispatcher(chains, concurrency=concurrency, share=share or concurrency)
        chains.dispatcher = d
        made.append((d, chains))
        return d, chains

    yield _make
    for d, chains in made:  # never leave threads blocked behind a failed assertion
        chains.release_everything()
        d.stop(timeout=5)


def test_many_run_at_once_up_to_concurrency_and_never_more(make) -> None:  # type: ignore[no-untyped-def]
    d, chains = make(concurrency=8)
    for i in range(16):  # 2 x concurrency: accepted without blocking
        assert d.submit(Work(f"x{i}"))
    chains.wait(lambda: chains.running == 8, "8 chains running at once")
    stats = d.stats()
    assert stats["running"] == 8 and stats["queued"] == 8 and stats["threads"] == 8
    chains.release_everything()
    assert d.wait_idle(TIMEOUT_S)
    assert chains.max_running == 8  # all of them at once, no more than concurrency
    assert chains.runs == Counter({f"x{i}": 1 for i in range(16)})  # each exactly once
    assert d.stats()["threads"] == 8  # grown on demand, capped at concurrency


def test_threads_are_grown_on_demand(make) -> None:  # type: ignore[no-untyped-def]
    d, chains = make(concurrency=64)
    assert d.stats()["threads"] == 0
    d.submit(Work("only"))
    chains.wait(lambda: chains.running == 1, "the one chain running")
    assert d.stats()["threads"] == 1
    chains.release_everything()
    assert d.wait_idle(TIMEOUT_S)


def test_enter_refuses_beyond_the_share_and_a_configured_limit() -> None:
    d = Dispatcher(lambda w: None, concurrency=10, share=2)
    assert d.enter("a") and d.enter("a")
    assert not d.enter("a")  # the share is in use
    assert d.enter("b")  # another destination is not affected
    d.leave("a")
    assert d.enter("a") and not d.enter("a")
    # a destination configured with its own limit (below or above the default share)
    assert d.enter("c", limit=1) and not d.enter("c", limit=1)
    assert all(d.enter("e", limit=5) for _ in range(5)) and not d.enter("e", limit=5)
    # never more than the whole worker, whatever the configuration says
    assert all(d.enter("f", limit=1000) for _ in range(10)) and not d.enter("f", limit=1000)
    assert d.stats()["in_flight"] == {"a": 2, "b": 1, "c": 1, "e": 5, "f": 10}


def test_share_is_capped_by_concurrency() -> None:
    d = Dispatcher(lambda w: None, concurrency=3, share=50)
    assert d.share == 3
    assert all(d.enter("a") for _ in range(3)) and not d.enter("a")


def test_a_destination_never_holds_more_than_its_share_and_others_go_on(make) -> None:  # type: ignore[no-untyped-def]
    d, chains = make(concurrency=8, share=2)
    chains.release(*(f"fast/{i}" for i in range(4)))  # a fast receiver; slow ones hang
    for i in range(6):
        d.submit(Work(f"slow/{i}"))
    for i in range(4):
        d.submit(Work(f"fast/{i}"))
    # 2 slow calls hang; every fast one gets its slot (2 at a time) and ends meanwhile
    chains.wait(lambda: chains.inside["slow"] == 2, "two calls to slow")
    chains.wait(lambda: all(f"fast/{i}" in chains.done for i in range(4)), "every fast call")
    assert chains.inside["slow"] == 2 and not any(x.startswith("slow") for x in chains.done)
    # the other four wait, parked, holding no thread
    eventually(lambda: d.stats()["parked"] == {"slow": 4} and d.stats()["running"] == 2,
               "four slow chains parked")
    assert chains.inside["slow"] == 2 and chains.runs["slow/5"] == 1
    chains.release_everything()
    assert d.wait_idle(TIMEOUT_S)
    assert chains.max_inside["slow"] == 2 and chains.max_inside["fast"] <= 2
    assert sorted(chains.done) == sorted([f"slow/{i}" for i in range(6)]
                                         + [f"fast/{i}" for i in range(4)])


def test_a_parked_chain_runs_again_when_a_slot_is_left_and_not_before(make) -> None:  # type: ignore[no-untyped-def]
    d, chains = make(concurrency=4, share=1)
    d.submit(Work("d/a"))
    chains.wait(lambda: "d/a" in chains.entered, "a inside d")
    for x in ("b", "c", "e"):  # in this order
        d.submit(Work(f"d/{x}"))
        eventually(lambda x=x: d.stats()["parked"].get("d", 0) == "bce".index(x) + 1,
                   f"d/{x} parked")
    # other work still runs while they are parked, and does not wake them
    d.submit(Work("other"))
    chains.wait(lambda: chains.running == 2, "other running beside d/a")
    chains.release("other")
    chains.wait(lambda: "other" in chains.done, "other done")
    eventually(lambda: d.stats()["running"] == 1, "other's thread back")
    assert chains.runs == Counter({"d/a": 1, "d/b": 1, "d/c": 1, "d/e": 1, "other": 1})
    assert d.stats()["parked"] == {"d": 3}
    assert d.busy and not d.wait_idle(0)

    # each slot left wakes the oldest parked chain, which then takes the slot
    for prev, nxt in (("d/a", "d/b"), ("d/b", "d/c"), ("d/c", "d/e")):
        chains.release(prev)
        chains.wait(lambda nxt=nxt: nxt in chains.entered, f"{nxt} inside d")
        assert chains.runs[nxt] == 2
    chains.release("d/e")
    assert d.wait_idle(TIMEOUT_S)
    assert chains.entered == ["d/a", "d/b", "d/c", "d/e"]
    assert chains.max_inside["d"] == 1
    assert d.stats()["parked"] == {} and d.stats()["in_flight"] == {}


def test_a_chain_that_parks_after_the_slot_was_left_goes_again_at_once() -> None:
    """The race between ``enter`` refusing and the chain parking: the slot was left in
    between, so nothing would ever wake it — it must be queued again instead."""
    ran: list[str] = []
    gate = threading.Event()
    box: dict[str, Dispatcher] = {}

    def run(work: Work) -> str | None:
        ran.append(work.execution_id)
        if work.execution_id == "late" and ran.count("late") == 1:
            assert not box["d"].enter("d")  # the slot is held ...
            box["d"].leave("d")  # ... and left before this chain parks
            return "d"
        gate.set()
        return None

    d = box["d"] = Dispatcher(run, concurrency=2, share=1)
    assert d.enter("d")
    d.submit(Work("late"))
    assert gate.wait(TIMEOUT_S), "the chain was parked with nobody left to wake it"
    assert d.wait_idle(TIMEOUT_S)
    assert ran == ["late", "late"]
    d.stop(timeout=5)


def test_a_duplicate_submit_of_an_id_in_hand_is_dropped(make) -> None:  # type: ignore[no-untyped-def]
    d, chains = make(concurrency=2, share=1)
    assert d.submit(Work("d/run"))
    chains.wait(lambda: "d/run" in chains.entered, "d/run inside")
    assert not d.submit(Work("d/run"))  # running
    assert d.submit(Work("d/park"))
    eventually(lambda: d.stats()["parked"] == {"d": 1}, "d/park parked")
    assert not d.submit(Work("d/park"))  # parked
    # the second thread is free again (d/park gave it back): hold it with another chain
    assert d.submit(Work("q0"))
    chains.wait(lambda: chains.running == 2, "q0 running")
    assert d.submit(Work("queued"))
    assert not d.submit(Work("queued"))  # queued
    assert d.stats()["queued"] == 1
    chains.release_everything()
    assert d.wait_idle(TIMEOUT_S)
    assert chains.runs == Counter({"d/run": 1, "d/park": 2, "q0": 1, "queued": 1})
    assert d.submit(Work("d/run"))  # out of hand: a later job for it runs again
    assert d.wait_idle(TIMEOUT_S)
    assert chains.runs["d/run"] == 2


def test_an_exception_in_a_chain_is_contained(make) -> None:  # type: ignore[no-untyped-def]
    d, chains = make(concurrency=1)
    chains.fail.add("boom")
    chains.release_everything()
    assert d.submit(Work("boom"))
    assert d.submit(Work("after"))
    assert d.wait_idle(TIMEOUT_S)
    assert chains.done == ["after"]  # the same thread went on
    assert d.submit(Work("boom"))  # forgotten, so the sweeper's job for it is accepted
    assert d.wait_idle(TIMEOUT_S)
    assert chains.runs["boom"] == 2


def test_stop_finishes_running_work_and_drops_what_is_queued_or_parked(make) -> None:  # type: ignore[no-untyped-def]
    d, chains = make(concurrency=2, share=1)
    d.submit(Work("d/run"))
    chains.wait(lambda: "d/run" in chains.entered, "d/run inside")
    d.submit(Work("d/parked"))
    eventually(lambda: d.stats()["parked"] == {"d": 1}, "d/parked parked")
    d.submit(Work("r2"))
    chains.wait(lambda: chains.running == 2, "two running")
    for i in range(2):  # 2 running + 2 queued: as many as submit takes without blocking
        d.submit(Work(f"queued{i}"))
    assert d.stats()["queued"] == 2

    result: list[bool] = []
    stopper = threading.Thread(target=lambda: result.append(d.stop(timeout=TIMEOUT_S)))
    stopper.start()
    eventually(lambda: d.stats()["queued"] == 0 and d.stats()["parked"] == {},
               "stop to drop the queued and parked work")
    assert not d.submit(Work("late"))  # a stopping dispatcher takes nothing new
    assert stopper.is_alive()  # it waits for the running chains
    chains.release("d/run", "r2")
    stopper.join(TIMEOUT_S)
    assert result == [True]
    assert sorted(chains.done) == ["d/run", "r2"]  # finished, not cut off
    # neither the dropped nor the parked one ran again (leave() after stop wakes nobody)
    assert chains.runs == Counter({"d/run": 1, "d/parked": 1, "r2": 1})
    assert not d.busy


def test_stop_answers_false_when_a_chain_outlives_the_timeout(make) -> None:  # type: ignore[no-untyped-def]
    d, chains = make(concurrency=1)
    d.submit(Work("hangs"))
    chains.wait(lambda: chains.running == 1, "the chain running")
    assert d.stop(timeout=0.05) is False
    chains.release_everything()
    assert d.wait_idle(TIMEOUT_S)


def test_submit_blocks_at_twice_concurrency_until_one_ends(make) -> None:  # type: ignore[no-untyped-def]
    d, chains = make(concurrency=2)
    for i in range(4):  # 2 running + 2 queued = 2 x concurrency
        assert d.submit(Work(f"w{i}"))
    chains.wait(lambda: chains.running == 2, "two running")

    accepted = threading.Event()
    answers: list[bool] = []

    def submit_fifth() -> None:
        answers.append(d.submit(Work("w4")))
        accepted.set()

    t = threading.Thread(target=submit_fifth, daemon=True)
    t.start()
    # it is blocked: no thread is free and nothing ended (a negative can only be waited)
    assert not accepted.wait(0.3), "submit did not block at 2 x concurrency"
    assert d.stats()["queued"] == 2 and chains.runs["w4"] == 0
    chains.release("w0")  # one ends: room for one more
    assert accepted.wait(TIMEOUT_S)
    assert answers == [True]
    chains.release_everything()
    assert d.wait_idle(TIMEOUT_S)
    assert chains.runs == Counter({f"w{i}": 1 for i in range(5)})


def test_a_non_blocking_submit_is_not_held_back(make) -> None:  # type: ignore[no-untyped-def]
    d, chains = make(concurrency=1)
    for i in range(2):
        d.submit(Work(f"w{i}"))
    chains.wait(lambda: chains.running == 1, "one running")
    assert d.submit(Work("extra"), block=False)  # the caller asked not to wait
    chains.release_everything()
    assert d.wait_idle(TIMEOUT_S)
    assert chains.runs["extra"] == 1


def test_stop_releases_a_blocked_submit(make) -> None:  # type: ignore[no-untyped-def]
    d, chains = make(concurrency=1)
    for i in range(2):
        d.submit(Work(f"w{i}"))
    chains.wait(lambda: chains.running == 1, "one running")
    answers: list[bool] = []
    t = threading.Thread(target=lambda: answers.append(d.submit(Work("blocked"))),
                         daemon=True)
    t.start()
    stopper = threading.Thread(target=d.stop, args=(TIMEOUT_S,), daemon=True)
    stopper.start()
    t.join(TIMEOUT_S)
    assert answers == [False]  # not queued behind a stop
    chains.release_everything()
    stopper.join(TIMEOUT_S)
    assert chains.runs["blocked"] == 0
