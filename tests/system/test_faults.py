"""Faults: a worker SIGKILLed mid-chain, Redis lost. Nothing accepted is lost, and no
finished step runs again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from sqlmodel import Session, select

from engine.store.models import Execution, StepRun
from engine.store.rule_files import apply_paths
from tests.servers import Reply

pytestmark = pytest.mark.slow

RULE = """
sources: [{{slug: s}}]
rules:
  - name: three-steps
    source: s
    actions:
      - {{id: one, type: webhook, url: "{url}/one"}}
      - {{id: two, type: webhook, url: "{url}/two", timeout_s: 30}}
      - {{id: three, type: webhook, url: "{url}/three"}}
"""


def start_worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "cli", "worker"],
                            env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def stop_worker(p: subprocess.Popen[bytes]) -> None:
    """SIGTERM (a warm shutdown), then make sure nothing of its process group is left."""
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(p.pid, signal.SIGKILL)  # e.g. the scheduler child of a killed worker
    except ProcessLookupError:
        pass
    p.wait()


def wait_until(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_sigkilled_worker_resumes_at_its_step_within_seconds(rt, env, client, sink, tmp_path):  # type: ignore[no-untyped-def]
    f = tmp_path / "r.yaml"
    f.write_text(RULE.format(url=sink.url))
    apply_paths(rt.catalog, [f])
    sink.queue("/two", Reply(json={"slow": True}, delay=8))  # the first try hangs
    first = start_worker(env)
    second = None
    try:
        assert client.post("/hooks/s", json={"n": 1}).status_code == 202
        wait_until(lambda: any(r.path == "/two" for r in sink.requests), 20, "step two")
        # mid-step, no cleanup runs; the whole process group, as a container kill would
        # (a lone SIGKILL leaves RQ's scheduler child process running as an orphan)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=5)
        killed_at = time.monotonic()

        second = start_worker(env)

        def finished() -> bool:
            with Session(rt.db) as s:
                return s.exec(select(Execution)).one().status == "succeeded"

        wait_until(finished, 40, "the chain to resume and finish")
        resumed_after = time.monotonic() - killed_at
    finally:
        for p in (first, second):
            if p is not None:
                stop_worker(p)
    paths = [r.path for r in sink.requests]
    assert paths.count("/one") == 1  # finished before the kill: not repeated
    assert paths.count("/two") == 2 and paths.count("/three") == 1
    keys = {r.headers["idempotency-key"] for r in sink.requests if r.path == "/two"}
    assert len(keys) == 1  # the receiver can drop the repeat
    with Session(rt.db) as s:
        two = s.exec(select(StepRun).where(StepRun.step_id == "two")).one()
    assert two.attempts == 2 and two.status == "succeeded"
    assert resumed_after < 25, f"took {resumed_after:.1f} s to resume"


def test_retries_are_scheduled_in_process_and_a_worker_leaves_no_children(  # type: ignore[no-untyped-def]
        rt, env, client, sink, tmp_path):
    f = tmp_path / "r.yaml"
    f.write_text(f"""
sources: [{{slug: s}}]
rules:
  - name: retry-once
    source: s
    actions:
      - id: call
        type: webhook
        url: "{sink.url}/flaky"
        retry: {{max_attempts: 3, backoff: fixed, initial_s: 0.5}}
""")
    apply_paths(rt.catalog, [f])
    sink.queue("/flaky", Reply(status=503))
    worker = start_worker(env)
    try:
        assert client.post("/hooks/s", json={}).status_code == 202

        def done() -> bool:
            with Session(rt.db) as s:
                ex = s.exec(select(Execution)).first()
                return ex is not None and ex.status == "succeeded"

        wait_until(done, 30, "the scheduled retry")
        children = subprocess.run(["pgrep", "-P", str(worker.pid)], capture_output=True,
                                  text=True).stdout.split()
        assert children == []  # the scheduler is a thread: SIGKILL leaves nothing behind
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=5)
    assert [r.path for r in sink.requests] == ["/flaky", "/flaky"]
