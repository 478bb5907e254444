"""Settings: one frozen object built from ``HOOKWISE_*`` environment variables.

Nothing here touches the network; ``Settings.from_env()`` only reads the environment and,
for the secret key, the data directory (it generates the key file once).
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

from engine.errors import ConfigError

DEFAULT_DATA_DIR = "./.hookwise"
DEFAULT_MAX_BODY_BYTES = 1_048_576
DEFAULT_EMAIL_FROM = "hookwise@localhost"
SECRET_KEY_FILE = "secret.key"
# Steps in flight per worker process (delivery threads), and the most of them one
# destination (scheme + host + port) may hold — half, unless set: bench/run.py's latency
# stage chose these (64 threads delivered half of what 256 did even to an instant sink).
DEFAULT_WORKER_CONCURRENCY = 512
DEFAULT_DESTINATION_SHARE = 256
DEFAULT_SWEEP_PENDING_S = 30  # seconds; HOOKWISE_SWEEP_PENDING_S


@dataclass(frozen=True)
class SmtpSettings:
    """Parsed ``HOOKWISE_SMTP_URL``: ``smtp://user:pass@host:port?starttls=true`` or ``smtps://``."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None
    ssl: bool = False
    starttls: bool = False
    timeout_s: float = 30.0

    @classmethod
    def parse(cls, url: str) -> SmtpSettings:
        u = urlparse(url)
        if u.scheme not in ("smtp", "smtps"):
            raise ConfigError(f"HOOKWISE_SMTP_URL: scheme must be smtp or smtps, got {u.scheme!r}")
        if not u.hostname:
            raise ConfigError("HOOKWISE_SMTP_URL: a host is required")
        q = {k: v[-1] for k, v in parse_qs(u.query).items()}
        ssl = u.scheme == "smtps"
        return cls(
            host=u.hostname,
            port=u.port or (465 if ssl else 25),
            username=unquote(u.username) if u.username else None,
            password=unquote(u.password) if u.password else None,
            ssl=ssl,
            starttls=q.get("starttls", "false").lower() in ("1", "true", "yes"),
            timeout_s=float(q.get("timeout", "30")),
        )


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _parse_allow(raw: str) -> tuple[tuple[Network, ...], tuple[str, ...]]:
    nets: list[Network] = []
    hosts: list[str] = []
    for item in (p.strip() for p in raw.replace(";", ",").split(",")):
        if not item:
            continue
        try:
            nets.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            hosts.append(item.lower())
    return tuple(nets), tuple(hosts)


@dataclass(frozen=True)
class Settings:
    """Everything configurable about one Hookwise installation."""

    data_dir: Path
    database_url: str
    redis_url: str | None  # None: an embedded Redis server in the data dir
    secret_key: str
    previous_secret_keys: tuple[str, ...] = ()  # still decrypt; `secrets rotate` re-encrypts
    smtp: SmtpSettings | None = None
    email_from: str = DEFAULT_EMAIL_FROM
    egress_allow_networks: tuple = ()
    egress_allow_hosts: tuple[str, ...] = ()
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    queue_name: str = "hookwise"
    worker_concurrency: int = DEFAULT_WORKER_CONCURRENCY
    destination_share: int = DEFAULT_DESTINATION_SHARE
    db_write_sqlite_dirs: tuple[str, ...] = ()  # where named SQLite connections may point
    # how long an event may stay pending (stored, not yet matched) before the sweeper
    # queues it again: its job is then presumed lost (Redis was away, a worker died)
    sweep_pending_s: int = DEFAULT_SWEEP_PENDING_S
    extra: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        data_dir = Path(env.get("HOOKWISE_DATA_DIR") or DEFAULT_DATA_DIR).resolve()
        db_url = env.get("HOOKWISE_DATABASE_URL") or f"sqlite:///{data_dir / 'hookwise.db'}"
        smtp_url = env.get("HOOKWISE_SMTP_URL")
        nets, hosts = _parse_allow(env.get("HOOKWISE_EGRESS_ALLOW", ""))
        max_body = _positive_int(env, "HOOKWISE_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES)
        concurrency = _positive_int(env, "HOOKWISE_WORKER_CONCURRENCY",
                                    DEFAULT_WORKER_CONCURRENCY)
        pending = _positive_int(env, "HOOKWISE_SWEEP_PENDING_S", DEFAULT_SWEEP_PENDING_S)
        share = _positive_int(env, "HOOKWISE_DESTINATION_CONCURRENCY",
                              max(1, concurrency * DEFAULT_DESTINATION_SHARE
                                  // DEFAULT_WORKER_CONCURRENCY))
        return cls(
            data_dir=data_dir,
            database_url=db_url,
            redis_url=env.get("HOOKWISE_REDIS_URL") or None,
            secret_key=env.get("HOOKWISE_SECRET_KEY") or _load_or_create_key(data_dir),
            previous_secret_keys=tuple(
                k.strip() for k in env.get("HOOKWISE_SECRET_KEY_PREVIOUS", "").split(",")
                if k.strip()
            ),
            smtp=SmtpSettings.parse(smtp_url) if smtp_url else None,
            email_from=env.get("HOOKWISE_EMAIL_FROM") or DEFAULT_EMAIL_FROM,
            egress_allow_networks=nets,
            egress_allow_hosts=hosts,
            max_body_bytes=max_body,
            queue_name=env.get("HOOKWISE_QUEUE", "hookwise"),
            worker_concurrency=concurrency,
            destination_share=min(share, concurrency),
            sweep_pending_s=pending,
            db_write_sqlite_dirs=tuple(
                d.strip() for d in env.get("HOOKWISE_DB_WRITE_SQLITE_DIRS", "").split(os.pathsep)
                if d.strip()
            ),
        )


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name) or str(default)
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < 1:
        raise ConfigError(f"{name} must be at least 1, got {value}")
    return value


def _load_or_create_key(data_dir: Path) -> str:
    """The installation's secret key, generated once into the data dir."""
    path = data_dir / SECRET_KEY_FILE
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    # O_EXCL: when several processes start at once, one wins and the others read its key.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as f:
        f.write(key)
    return key
