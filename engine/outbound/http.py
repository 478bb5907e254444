"""The outgoing HTTP client: egress-guarded, no redirects, bounded pool.

``build_http_client(settings)`` is the only way Hookwise makes outgoing HTTP requests.
Its transport runs ``httpcore.ConnectionPool`` over ``engine.outbound.egress.GuardedBackend``,
so every connection is checked against the egress rules on the address actually
dialled. httpx's own ``HTTPTransport`` does not accept a network backend, hence the
small ``GuardedTransport`` below, which maps httpcore errors to httpx ones as httpx does.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import threading
import typing
from collections.abc import Iterator
from http.cookiejar import DefaultCookiePolicy
from types import TracebackType

import httpcore
import httpx

from engine.outbound.egress import GuardedBackend

if typing.TYPE_CHECKING:
    from engine.settings import Settings

USER_AGENT = "Hookwise/0.1"

# httpx logs every request line, URL and query included, at INFO: rendered URLs may hold
# secrets, and every request is recorded (redacted) in its step record anyway.
logging.getLogger("httpx").setLevel(logging.WARNING)
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
DEFAULT_LIMITS = httpx.Limits(max_connections=50, max_keepalive_connections=10, keepalive_expiry=30)
THREADS_PER_POOL = 16

# Most specific first: the first match wins.
_EXC_MAP: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
)


@contextlib.contextmanager
def _mapped_errors() -> Iterator[None]:
    """Translate httpcore exceptions into the matching httpx exception."""
    try:
        yield
    except Exception as exc:
        for source, target in _EXC_MAP:
            if isinstance(exc, source):
                raise target(str(exc)) from exc
        raise


class _ResponseStream(httpx.SyncByteStream):
    def __init__(self, stream: typing.Iterable[bytes]):
        self._stream = stream

    def __iter__(self) -> Iterator[bytes]:
        with _mapped_errors():
            yield from self._stream

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()


class GuardedTransport(httpx.BaseTransport):
    """An httpx transport over an httpcore pool whose connections pass the egress guard."""

    def __init__(self, settings: Settings, *, limits: httpx.Limits = DEFAULT_LIMITS,
                 ssl_context: ssl.SSLContext | None = None):
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context or httpx.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(settings),
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.SyncByteStream)
        req = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _mapped_errors():
            resp = self._pool.handle_request(req)
        assert isinstance(resp.stream, typing.Iterable)
        return httpx.Response(
            status_code=resp.status,
            headers=resp.headers,
            stream=_ResponseStream(resp.stream),
            extensions=resp.extensions,
        )

    def close(self) -> None:
        self._pool.close()

    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        self.close()


def build_http_client(
    settings: Settings, *, timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    limits: httpx.Limits | None = None, ssl_context: ssl.SSLContext | None = None,
) -> httpx.Client:
    """The egress-guarded client actions use.

    Redirects are not followed (a 3xx is the step's answer), environment proxies are
    ignored (a proxy would dial on our behalf, past the guard), and a refused address
    raises ``engine.outbound.egress.EgressRefused`` (an ``httpx.ConnectError``). The caller owns
    the client and closes it.
    """
    client = httpx.Client(
        transport=GuardedTransport(settings, limits=limits or DEFAULT_LIMITS,
                                   ssl_context=ssl_context),
        follow_redirects=False,
        trust_env=False,
        timeout=timeout,
        headers={"User-Agent": USER_AGENT},
    )
    # One client serves every rule's steps: a cookie one destination sets must not ride
    # along on later steps (another rule's, another execution's). A step that needs a
    # cookie sends it as a header.
    client.cookies.jar.set_policy(DefaultCookiePolicy(allowed_domains=[]))
    return client


class HttpClients:
    """The process's outgoing clients, one per group of ``THREADS_PER_POOL`` threads.

    httpcore's pool takes one lock per request and per response close and, under it,
    looks at every connection it holds: with a few hundred delivery threads on one pool,
    they spent their time queueing for that lock (measured: 63 calls/s with 440
    connections open to a receiver answering in 1 s). Each thread keeps to one pool,
    so a pool holds about ``THREADS_PER_POOL`` connections per destination. They share
    one TLS context (and its loaded CA store).
    """

    def __init__(self, settings: Settings):
        self.settings = settings
        self._ssl = httpx.create_ssl_context()
        self._lock = threading.Lock()
        self._clients: list[httpx.Client] = []
        self._count = max(1, -(-settings.worker_concurrency // THREADS_PER_POOL))
        self._slot: dict[int, int] = {}

    def get(self) -> httpx.Client:
        """The calling thread's client."""
        tid = threading.get_ident()
        slot = self._slot.get(tid)
        if slot is None:
            with self._lock:
                slot = self._slot[tid] = len(self._slot) % self._count
                while len(self._clients) <= slot:
                    limits = httpx.Limits(max_connections=THREADS_PER_POOL * 4,
                                          max_keepalive_connections=THREADS_PER_POOL,
                                          keepalive_expiry=DEFAULT_LIMITS.keepalive_expiry)
                    self._clients.append(build_http_client(self.settings, limits=limits,
                                                           ssl_context=self._ssl))
        return self._clients[slot]

    def close(self) -> None:
        with self._lock:
            for client in self._clients:
                client.close()
            self._clients.clear()
            self._slot.clear()
