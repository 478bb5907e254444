"""The per-process state of a Hookwise web or worker process.

Built once (database engine, Redis client, queue, HTTP client, caches) from Settings and
reused by every request or job. Job functions find it with ``current()``; a worker
process calls ``install()`` before it starts working.
"""

from __future__ import annotations

import threading
from functools import cached_property
from typing import TYPE_CHECKING

from engine.errors import ConfigError
from engine.settings import Settings
from engine.store.db import make_engine

if TYPE_CHECKING:
    import httpx
    import redis
    from rq import Queue
    from sqlalchemy.engine import Engine

    from engine.outbound.http import HttpClients
    from engine.run.dispatch import Dispatcher
    from engine.store.accounts import Accounts
    from engine.store.catalog import Catalog
    from engine.store.event_writer import EventWriter
    from engine.store.group_commit import StatementWriter
    from engine.store.rejections import RejectionRecorder
    from engine.store.secrets import SecretStore


STOP_DELIVERY_S = 30.0  # running chains get this long to end when the process stops


class Runtime:
    """Lazily built, process-wide resources for one Settings."""

    def __init__(self, settings: Settings, *, redis_url: str | None = None):
        self.settings = settings
        self._redis_url = redis_url or settings.redis_url
        # SQLAlchemy engines of db_write's named connections, built once per URL
        self.named_engines: dict[str, Engine] = {}
        # the RQ worker name of this process (None outside workers); steps record it
        self.worker_name: str | None = None
        # a worker's delivery threads (engine.work.worker.start_delivery); None: chains
        # run inline in the job
        self.dispatcher: Dispatcher | None = None

    @property
    def redis_url(self) -> str:
        if self._redis_url:
            return self._redis_url
        from engine.broker import embedded as redis_server

        if redis_server.is_running(self.settings.data_dir):
            self._redis_url = redis_server.url_for(self.settings.data_dir)
            return self._redis_url
        raise ConfigError(
            "no Redis: set HOOKWISE_REDIS_URL, or run 'hookwise serve', which starts an "
            f"embedded one in {self.settings.data_dir}"
        )

    @cached_property
    def db(self) -> Engine:
        return make_engine(self.settings.database_url)

    @cached_property
    def redis(self) -> redis.Redis:
        from engine.broker.queue import connect

        return connect(self.redis_url)

    @cached_property
    def queue(self) -> Queue:
        from engine.broker.queue import make_queue

        return make_queue(self.redis, self.settings.queue_name)

    @cached_property
    def event_writer(self) -> EventWriter:
        """Group commit for ingest (see engine.store.event_writer.EventWriter)."""
        from engine.broker.inbox import push_many
        from engine.store.event_writer import EventWriter

        return EventWriter(lambda: self.db, push=lambda ids: push_many(self.queue, ids))

    @cached_property
    def statement_writer(self) -> StatementWriter:
        """Group commit for the workers' step writes (see engine.run.record)."""
        from engine.store.group_commit import StatementWriter

        return StatementWriter(lambda: self.db)

    @cached_property
    def rejections(self) -> RejectionRecorder:
        """Counts rejected webhooks and records a sample in the background."""
        from engine.store.rejections import RejectionRecorder

        return RejectionRecorder(lambda: self.db, lambda: self.redis)

    @cached_property
    def http_clients(self) -> HttpClients:
        from engine.outbound.http import HttpClients

        return HttpClients(self.settings)

    @property
    def http(self) -> httpx.Client:
        """The calling thread's egress-guarded client (see ``HttpClients``)."""
        return self.http_clients.get()

    @cached_property
    def secrets(self) -> SecretStore:
        from engine.store.secrets import SecretStore

        return SecretStore(self.db, self.settings.secret_key,
                           self.settings.previous_secret_keys)

    @cached_property
    def accounts(self) -> Accounts:
        from engine.store.accounts import Accounts

        return Accounts(self.db)

    @cached_property
    def catalog(self) -> Catalog:
        from engine.store.catalog import Catalog

        return Catalog(self.db)

    def close(self) -> None:
        """Release connections (pools, sockets); the object can be dropped afterwards."""
        if self.dispatcher is not None:
            self.dispatcher.stop(timeout=STOP_DELIVERY_S)
            self.dispatcher = None
        d = self.__dict__
        if "rejections" in d:
            d["rejections"].close()
        if "http_clients" in d:
            d["http_clients"].close()
        if "redis" in d:
            d["redis"].close()
            d["redis"].connection_pool.disconnect()
        if "db" in d:
            d["db"].dispose()
        for eng in self.named_engines.values():
            eng.dispose()
        self.named_engines.clear()
        for name in ("db", "redis", "queue", "http_clients", "secrets", "catalog", "accounts",
                     "statement_writer", "rejections"):
            d.pop(name, None)


_current: Runtime | None = None
_lock = threading.Lock()


def install(rt: Runtime | None) -> None:
    """Make ``rt`` the process's runtime (None to forget it)."""
    global _current
    with _lock:
        _current = rt


def current() -> Runtime:
    """The process's runtime, built from the environment on first use."""
    global _current
    if _current is None:
        with _lock:
            if _current is None:
                _current = Runtime(Settings.from_env())
    return _current
