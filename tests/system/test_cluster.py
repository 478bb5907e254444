"""The short multi-host rig run (issue 16): bench/cluster.py --short builds eight hosts
from network namespaces (PostgreSQL, Redis, two web hosts behind a round-robin, three
worker hosts), and cuts a worker host's link, freezes a worker host past its heartbeat
and kills a web host while bursts of events flow to a receiver that answers in
50-200 ms. Nothing accepted may be lost, and no event may be delivered under two
different Idempotency-Keys."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None,
                    reason="the rig needs root and iproute2 (ip netns)")
def test_short_rig_run_loses_nothing(tmp_path: Path) -> None:
    out = tmp_path / "cluster.json"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "cluster.py"), "--short",
                           "--events", "80", "--json", str(out)],
                          capture_output=True, text=True, timeout=600,
                          # the sweeper re-queues lost jobs' events after 5 s, not 30 s
                          env={**os.environ, "HOOKWISE_SWEEP_PENDING_S": "5"})
    print(done.stdout)
    report = json.loads(out.read_text())
    faults = {r["fault"]: r for r in report["results"]}
    assert set(faults) == {"cut", "freeze", "web-kill"}, done.stderr[-3000:]
    for name, r in faults.items():
        assert r["accepted"] > 0, (name, r)
        assert r["lost"] == 0, (name, r)
        assert r["unexplained_repeats"] == 0, (name, r)
        assert r["delivered"] == r["accepted"], (name, r)
    assert done.returncode == 0, done.stderr[-3000:]
