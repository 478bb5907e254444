"""The production compose file is valid and wires what the README says."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def test_compose_file_validates() -> None:
    exe = shutil.which("docker-compose")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("docker-compose is missing (apt-get install docker-compose)")
        pytest.skip("docker-compose is not installed")
    res = subprocess.run([exe, "config", "-q"], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "HOOKWISE_SECRET_KEY": "x"}, timeout=60)
    assert res.returncode == 0, res.stderr


def test_compose_runs_migrations_before_web_and_workers() -> None:
    doc = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = doc["services"]
    assert {"postgres", "redis", "migrate", "web", "worker"} <= set(services)
    assert services["migrate"]["command"] == ["hookwise", "db", "upgrade"]
    for name in ("web", "worker"):
        dep = services[name]["depends_on"]["migrate"]
        assert dep == {"condition": "service_completed_successfully"}
    assert services["worker"]["deploy"]["replicas"] == 2
    assert "--no-migrate" in services["web"]["command"]
