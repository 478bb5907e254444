"""The chaos bench, CI-sized: 200 events through the web server, workers and an embedded Redis,
one worker SIGKILLed and one Redis restart, against a sink failing 30% of calls."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def test_small_chaos_run_loses_nothing(tmp_path: Path) -> None:
    out = tmp_path / "chaos.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "chaos.py"), "--events", "200", "--kills", "1",
         "--redis-restarts", "1", "--workers", "3", "--drain-timeout", "180",
         "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
        # events stored while Redis was down are re-queued after 5 s, not 30 s
        env={**os.environ, "HOOKWISE_SWEEP_PENDING_S": "5"},
    )
    assert out.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    report = proc.stdout[-3000:]
    assert result["drained"], report
    assert result["events_accepted"] == 200, report
    assert result["lost"] == 0, report
    assert result["events_delivered"] == 200 and result["keys_delivered"] == 200, report
    assert result["duplicates_unexplained"] == 0, report
    assert result["worker_kills"] == 1 and result["redis_restarts"] == 1, report
    assert proc.returncode == 0, report
