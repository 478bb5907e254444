"""The README's promise: ``hookwise serve`` in an empty directory, no configuration,
then apply a rule, post a webhook with a plain HTTP client, and see the call arrive."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.servers import HttpSink, free_port

pytestmark = pytest.mark.slow

RULE = """
sources:
  - slug: demo
  - slug: ask
    respond: {{mode: reply, timeout_ms: 5000}}
rules:
  - name: answer
    source: ask
    actions:
      - {{id: hi, type: reply, json: {{text: "hi {{{{ body.name }}}}"}}}}
  - name: forward
    source: demo
    when: {{path: $.body.kind, op: eq, value: ping}}
    actions:
      - id: out
        type: webhook
        url: {url}/received
        json: {{echo: "{{{{ body.msg | upper }}}}"}}
"""


def clean_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKWISE_")}
    env["HOOKWISE_EGRESS_ALLOW"] = "127.0.0.0/8"  # the sink lives on loopback
    return env


def hookwise(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)


def wait_ok(proc: subprocess.Popen[str], url: str, what: str, timeout: float = 30) -> None:
    """Until ``url`` answers 200; fails with the process's output if it exits first."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def python_children(pid: int) -> list[str]:
    """The command lines of ``pid``'s child processes that run Python."""
    kids = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        kids += Path(f"/proc/{pid}/task/{tid}/children").read_text().split()
    cmds = [Path(f"/proc/{k}/cmdline").read_bytes().replace(b"\0", b" ").decode() for k in kids]
    return [c for c in cmds if " -m cli " in c]


@pytest.mark.parametrize("one_process", [False, True], ids=["processes", "one-process"])
def test_serve_from_an_empty_directory(tmp_path: Path, one_process: bool) -> None:
    env = clean_env(tmp_path)
    port = free_port()
    with HttpSink() as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli", "serve", "--port", str(port), "--workers", "1",
             *(["--one-process"] if one_process else [])],
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        try:
            wait_ok(proc, f"http://127.0.0.1:{port}/readyz", "serve did not become ready")
            kids = python_children(proc.pid)
            if one_process:  # the web is served by the worker's own process
                assert len(kids) == 1 and "worker --web" in kids[0], kids
            else:
                assert len(kids) == 2, kids

            (tmp_path / "rule.yaml").write_text(RULE.format(url=sink.url))
            applied = hookwise("apply", "rule.yaml", cwd=tmp_path, env=env)
            assert applied.returncode == 0, applied.stderr
            assert "rule forward: created" in applied.stdout, applied.stdout

            resp = httpx.post(f"http://127.0.0.1:{port}/hooks/demo",
                              json={"kind": "ping", "msg": "hello"}, timeout=5)
            assert resp.status_code == 202
            [req] = sink.wait_for(1, timeout=20)
            assert req.json() == {"echo": "HELLO"}
            # a sync reply: the web waits while a worker runs the chain (in one process,
            # a thread waits while the main thread works)
            resp = httpx.post(f"http://127.0.0.1:{port}/hooks/ask", json={"name": "ann"},
                              timeout=10)
            assert resp.status_code == 200 and resp.json() == {"text": "hi ann"}
        finally:
            proc.send_signal(signal.SIGINT)
            out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, out
        assert "stopped" in out
        # no user yet: serve printed the one-time setup link
        assert f"http://127.0.0.1:{port}/setup?token=" in out
        data = tmp_path / ".hookwise"
        assert (data / "hookwise.db").exists()
        assert not (data / "redis.sock").exists()  # the embedded Redis is gone


@pytest.mark.parametrize("server", ["granian", "gunicorn"])
def test_web_ingests_and_stops_cleanly(tmp_path: Path, redis_url: str, server: str) -> None:
    """`hookwise web --server S`: webhooks are stored and queued, an unknown source is
    404, and SIGTERM stops every process of the server."""
    env = {**clean_env(tmp_path), "HOOKWISE_DATA_DIR": str(tmp_path / "data"),
           "HOOKWISE_REDIS_URL": redis_url, "HOOKWISE_QUEUE": f"web-{server}-{os.getpid()}"}
    (tmp_path / "s.yaml").write_text("sources: [{slug: demo}]")
    assert hookwise("apply", "s.yaml", cwd=tmp_path, env=env).returncode == 0
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "web", "--server", server, "--port", str(port),
         "--workers", "2", "--threads", "4", "--no-migrate"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )
    try:
        wait_ok(proc, f"http://127.0.0.1:{port}/healthz", f"{server} did not start")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as c:
            ids = [c.post("/hooks/demo", json={"n": n}).json()["event_id"] for n in range(5)]
            assert c.post("/hooks/nope", json={}).status_code == 404
        shown = hookwise("events", "show", ids[-1], cwd=tmp_path, env=env)
        assert shown.returncode == 0 and ids[-1] in shown.stdout, shown.stdout + shown.stderr
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if proc.stdout:
            proc.stdout.close()
    leftovers = subprocess.run(["pgrep", "-s", str(proc.pid)], capture_output=True, text=True)
    assert leftovers.stdout.strip() == "", f"{server} left processes behind"


def test_worker_web_needs_host_and_port(tmp_path: Path) -> None:
    env = {**clean_env(tmp_path), "HOOKWISE_DATA_DIR": str(tmp_path / "data")}
    done = hookwise("worker", "--web", "8000", cwd=tmp_path, env=env)
    assert done.returncode == 2
    assert "--web: expected HOST:PORT, got '8000'" in done.stderr
