"""A second server on a port that is already taken fails at start (issue 12, item 12):
granian binds with SO_REUSEPORT, so without a check it would start and silently share the
port (the kernel splitting the traffic between the two)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.servers import free_port

pytestmark = pytest.mark.slow

START_TIMEOUT_S = 30


def env_for(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKWISE_")}
    env["HOOKWISE_DATA_DIR"] = str(tmp / "data")
    env["HOOKWISE_SECRET_KEY"] = "port-test-key"
    if os.environ.get("HOOKWISE_TEST_REDIS_URL"):
        env["HOOKWISE_REDIS_URL"] = os.environ["HOOKWISE_TEST_REDIS_URL"]
    return env


def run_to_exit(args: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str]:
    """Run ``hookwise ARGS`` and answer (exit code, stderr); fails if it is still running
    (serving) after START_TIMEOUT_S."""
    proc = subprocess.Popen([sys.executable, "-m", "cli", *args], env=env, cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _out, err = proc.communicate(timeout=START_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)  # serve stops its children on SIGTERM
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
        pytest.fail(f"hookwise {' '.join(args)} started on a port in use and was still "
                    f"running after {START_TIMEOUT_S} s")
    return proc.returncode, err


@pytest.fixture(params=[True, False], ids=["reuseport-listener", "plain-listener"])
def taken_port(request: pytest.FixtureRequest) -> Iterator[int]:
    """A port another process listens on: with SO_REUSEPORT like a granian server (the
    case that shared silently), or plainly."""
    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if request.param:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen()
        yield port


@pytest.mark.parametrize("command", [
    ["web", "--no-migrate"],
    ["serve"],
    ["serve", "--one-process"],
], ids=["web", "serve", "serve-one-process"])
def test_a_server_refuses_a_port_in_use(tmp_path: Path, taken_port: int,
                                        command: list[str]) -> None:
    code, err = run_to_exit([*command, "--host", "127.0.0.1", "--port", str(taken_port)],
                            env_for(tmp_path), tmp_path)
    assert code == 2, err
    assert f"port {taken_port} is in use" in err
    assert "Traceback" not in err


def test_worker_web_refuses_a_port_in_use(tmp_path: Path, taken_port: int) -> None:
    code, err = run_to_exit(["worker", "--web", f"127.0.0.1:{taken_port}"],
                            env_for(tmp_path), tmp_path)
    assert code == 2, err
    assert f"port {taken_port} is in use" in err and "Traceback" not in err


def test_a_second_hookwise_web_on_the_same_port_exits(tmp_path: Path) -> None:
    """The case itself: a real ``hookwise web`` holds the port, a second one is refused."""
    env, port = env_for(tmp_path), free_port()
    first = subprocess.Popen([sys.executable, "-m", "cli", "web", "--port", str(port),
                              "--workers", "1"], env=env, cwd=tmp_path,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert first.poll() is None, "the first hookwise web exited"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the first hookwise web did not start"
            time.sleep(0.2)
        code, err = run_to_exit(["web", "--port", str(port), "--no-migrate"], env, tmp_path)
        assert code == 2 and f"port {port} is in use" in err, err
        assert first.poll() is None  # the first one serves on
    finally:
        first.send_signal(signal.SIGTERM)
        try:
            first.wait(timeout=15)
        except subprocess.TimeoutExpired:
            first.kill()
            first.wait()
