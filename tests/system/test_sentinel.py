"""Redis high availability through Sentinel (issue 16, item 3): a primary, a replica and
three Sentinels of the test's own on loopback; Hookwise on a ``redis+sentinel://`` URL;
the primary SIGKILLed mid-burst. The worker and the web side follow the promoted replica
without a restart, nothing answered 2xx is lost, and every event is delivered once."""

from __future__ import annotations

import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from engine import runtime as runtime_mod
from engine.broker.queue import connect, parse_sentinel_url
from engine.runtime import Runtime
from engine.settings import Settings
from engine.store.db import upgrade
from engine.store.rule_files import apply_paths
from tests.system.test_faults import start_worker, stop_worker, wait_until
from tests.system.test_faults_redis import ONE_STEP, events, executions, finished, while_alive

pytestmark = pytest.mark.slow

SERVICE = "hw"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ping(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if redis.Redis(port=port, socket_timeout=0.5).ping():
                return
        except redis.RedisError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"redis on {port} did not start")
        time.sleep(0.05)


class RedisHA:
    """One primary, one replica, three Sentinels (quorum 2), all on loopback."""

    def __init__(self, root: Path):
        self.root = root
        self.ports = {"primary": _free_port(), "replica": _free_port()}
        self.sentinels = [_free_port() for _ in range(3)]
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def _redis(self, name: str, *extra: str) -> None:
        d = self.root / name
        d.mkdir(exist_ok=True)
        self.procs[name] = subprocess.Popen(
            ["redis-server", "--port", str(self.ports[name]), "--bind", "127.0.0.1",
             "--dir", str(d), "--save", "", "--appendonly", "no", *extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_ping(self.ports[name])

    def start(self) -> None:
        self._redis("primary")
        self._redis("replica", "--replicaof", "127.0.0.1", str(self.ports["primary"]))
        for i, port in enumerate(self.sentinels):
            conf = self.root / f"sentinel-{i}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.root}\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {self.ports['primary']} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} 1000\n"
                f"sentinel failover-timeout {SERVICE} 5000\n"
                f"sentinel parallel-syncs {SERVICE} 1\n")
            self.procs[f"sentinel-{i}"] = subprocess.Popen(
                ["redis-server", str(conf), "--sentinel"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for port in self.sentinels:
            _wait_ping(port)
        deadline = time.monotonic() + 20
        while True:  # the replica has synced and the Sentinels know it
            info = redis.Redis(port=self.ports["replica"]).info("replication")
            known = redis.Redis(port=self.sentinels[0]).sentinel_slaves(SERVICE)
            if info.get("master_link_status") == "up" and known:
                return
            assert time.monotonic() < deadline, "the replica did not sync"
            time.sleep(0.1)

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.sentinels)
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    def primary_port(self) -> int:
        host, port = redis.Redis(port=self.sentinels[0]).sentinel_get_master_addr_by_name(
            SERVICE)
        return int(port)

    def kill(self, name: str) -> None:
        self.procs[name].send_signal(signal.SIGKILL)
        self.procs[name].wait()

    def stop(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.terminate()
        for p in self.procs.values():
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()


@pytest.fixture
def ha(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisHA]:
    cluster = RedisHA(tmp_path_factory.mktemp("redis-ha"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def test_sentinel_urls_are_parsed_with_clear_errors() -> None:
    assert parse_sentinel_url("redis+sentinel://a:26379,b:26380/mymaster/2") == (
        [("a", 26379), ("b", 26380)], "mymaster", 2, None, False)
    assert parse_sentinel_url("rediss+sentinel://:p%40ss@a/svc")[1:] == ("svc", 0, "p@ss", True)
    for bad, why in [("redis+sentinel:///svc", "names no Sentinel"),
                     ("redis+sentinel://a:port/svc", "is not host:port"),
                     ("redis+sentinel://a:26379", "names no service"),
                     ("redis+sentinel://a:26379/svc/zero", "is not a number")]:
        with pytest.raises(ValueError, match=why):
            parse_sentinel_url(bad)


def test_primary_killed_mid_burst_loses_nothing(ha: RedisHA, env, sink, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from web import create_app

    # events stored while no primary answered are re-queued by the sweeper once pending
    # this long (default 30 s): shortened so the test waits seconds, not half a minute
    own_env = {**env, "HOOKWISE_REDIS_URL": ha.url, "HOOKWISE_SWEEP_PENDING_S": "5"}
    settings = Settings.from_env(own_env)
    upgrade(settings)
    rt = Runtime(settings)
    runtime_mod.install(rt)
    assert connect(ha.url).ping()
    assert rt.redis.connection_pool.connection_kwargs.get("port") is None  # asks Sentinels
    f = tmp_path / "r.yaml"
    f.write_text(ONE_STEP.format(url=sink.url))
    apply_paths(rt.catalog, [f])
    client = create_app(runtime=rt).test_client()
    worker = start_worker(own_env)
    answers: Counter[int] = Counter()
    accepted: list[str] = []
    first_primary = ha.primary_port()

    def burst(n0: int, n: int) -> None:
        for i in range(n0, n0 + n):
            resp = client.post("/hooks/s", json={"n": i})
            answers[resp.status_code] += 1
            if resp.status_code == 202:
                accepted.append(resp.get_json()["event_id"])
            time.sleep(0.05)

    try:
        burst(0, 20)
        killer = threading.Timer(0.3, ha.kill, args=("primary",))
        killer.start()
        burst(20, 80)  # about 4 s: the Sentinels fail over (down after 1 s) meanwhile
        killer.join()
        wait_until(lambda: ha.primary_port() != first_primary, 30, "the failover")
        burst(100, 20)
        wait_until(while_alive(worker, finished(rt, len(accepted))), 120,
                   "every accepted event to be delivered after the failover")
        assert worker.poll() is None
    finally:
        stop_worker(worker)
        runtime_mod.install(None)
    stored = {e.id for e in events(rt)}
    statuses = {e.status for e in executions(rt)}
    rt.close()
    assert set(answers) <= {202, 503}, answers  # never a 2xx for an event not stored
    assert set(accepted) <= stored
    assert statuses == {"succeeded"}
    keys = Counter(r.headers["idempotency-key"] for r in sink.requests)
    assert len(keys) == len(accepted), (len(keys), len(accepted))
    repeats = sum(v - 1 for v in keys.values())
    print(f"\nsentinel failover: {answers[202]} accepted, {answers[503]} answered 503, "
          f"{len(keys)} delivered, {repeats} repeats (same Idempotency-Key)")
