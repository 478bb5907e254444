"""RQ wiring: one queue, a JSON serializer, and job functions that take ids only.

Jobs carry nothing but ids; the database holds everything else, so a lost job is
recovered by re-queuing from the database (see ``engine.work.sweeper``).
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import unquote

import redis
from rq import Queue
from rq.exceptions import DuplicateJobError, NoSuchJobError
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from engine.broker import liveness
from engine.broker.jobs import PROCESS_EVENT, RUN_EXECUTION
from engine.errors import QueueError

JOB_TIMEOUT_S = 600
RESULT_TTL_S = 0  # results live in the database, not in Redis
FAILURE_TTL_S = 7 * 24 * 3600


_TIMEOUTS = {"socket_connect_timeout": 2, "socket_timeout": 10, "health_check_interval": 30}
SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")


def connect(url: str) -> redis.Redis:
    """A Redis client with short timeouts, so a dead Redis fails fast instead of hanging.

    ``redis+sentinel://[:password@]host:26379,host2:26379/<service>[/<db>]`` asks those
    Sentinels for the service's primary and follows it when they fail it over (every
    new connection asks again; connections to a demoted primary are dropped)."""
    if url.split("://", 1)[0] in SENTINEL_SCHEMES:
        return _sentinel_primary(url)
    return redis.Redis.from_url(url, **_TIMEOUTS)  # type: ignore[arg-type]


def parse_sentinel_url(url: str) -> tuple[list[tuple[str, int]], str, int, str | None, bool]:
    """(sentinel addresses, service name, db, password, tls) of a Sentinel URL; ValueError
    naming what is wrong."""
    scheme, _, rest = url.partition("://")
    netloc, _, path = rest.partition("/")
    password = None
    if "@" in netloc:
        auth, _, netloc = netloc.rpartition("@")
        password = unquote(auth.split(":", 1)[-1]) or None
    hosts: list[tuple[str, int]] = []
    for part in filter(None, netloc.split(",")):
        host, sep, port = part.rpartition(":")
        if not sep or part.endswith("]"):  # no port ([::1] alone, or a plain name)
            host, port = part, "26379"
        if not port.isascii() or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"Sentinel URL {url!r}: {part!r} is not host:port")
        hosts.append((host.strip("[]"), int(port)))
    if not hosts:
        raise ValueError(f"Sentinel URL {url!r} names no Sentinel (host:26379,host2:26379)")
    segments = [p for p in path.split("?", 1)[0].split("/") if p]
    if not segments:
        raise ValueError(f"Sentinel URL {url!r} names no service: add /<service>, "
                         "e.g. /mymaster/0")
    db = segments[1] if len(segments) > 1 else "0"
    if not db.isascii() or not db.isdigit():
        raise ValueError(f"Sentinel URL {url!r}: database {db!r} is not a number")
    return hosts, unquote(segments[0]), int(db), password, scheme.startswith("rediss")


def _sentinel_primary(url: str) -> redis.Redis:
    from redis.sentinel import Sentinel

    hosts, service, db, password, tls = parse_sentinel_url(url)
    sentinel = Sentinel(hosts, socket_connect_timeout=2, socket_timeout=2,
                        sentinel_kwargs={"password": password} if password else None)
    return sentinel.master_for(service, db=db, password=password, ssl=tls,
                               **_TIMEOUTS)  # type: ignore[arg-type]


def make_queue(conn: redis.Redis, name: str) -> Queue:
    return Queue(name, connection=conn, serializer=JSONSerializer, default_timeout=JOB_TIMEOUT_S)


def event_job_id(event_id: str) -> str:
    return f"event-{event_id}"


def enqueue_event(queue: Queue, event_id: str) -> bool:
    """Queue matching of a stored event, once: while a job for the event is queued or
    running, another is refused atomically (answers False). A job that died (failed,
    stopped) is replaced. Raises QueueError if Redis is unreachable."""
    job_id = event_job_id(event_id)
    try:
        try:
            queue.enqueue_call(
                PROCESS_EVENT, args=(event_id,), job_id=job_id, unique=True,
                result_ttl=RESULT_TTL_S, failure_ttl=FAILURE_TTL_S,
                description=f"process {event_id}",
            )
            return True
        except DuplicateJobError:
            status, worker = _job_state(queue, job_id)
            dead = status == JobStatus.STARTED and worker and not liveness.alive(
                queue.connection, [worker])
            if dead or status in (None, JobStatus.FAILED, JobStatus.STOPPED,
                                  JobStatus.CANCELED, JobStatus.FINISHED):
                queue.connection.delete(Job.key_for(job_id))
                queue.enqueue_call(
                    PROCESS_EVENT, args=(event_id,), job_id=job_id, unique=True,
                    result_ttl=RESULT_TTL_S, failure_ttl=FAILURE_TTL_S,
                )
                return True
            return False
    except DuplicateJobError:
        return False
    except redis.RedisError as exc:
        raise QueueError(f"could not queue event {event_id}: {exc}") from exc


def _job_state(queue: Queue, job_id: str) -> tuple[JobStatus | None, str | None]:
    """The job's status and the worker that took it (None, None when it is gone)."""
    try:
        job = Job.fetch(job_id, connection=queue.connection, serializer=JSONSerializer)
    except NoSuchJobError:
        return None, None
    return job.get_status(refresh=False), job.worker_name


def enqueue_execution(queue: Queue, execution_id: str, *, delay_s: float = 0) -> None:
    """Queue (or schedule, after ``delay_s``) the next step(s) of an execution."""
    try:
        if delay_s > 0:
            queue.enqueue_in(
                timedelta(seconds=delay_s),
                RUN_EXECUTION,
                execution_id,
                result_ttl=RESULT_TTL_S,
                failure_ttl=FAILURE_TTL_S,
            )
        else:
            queue.enqueue_call(
                RUN_EXECUTION,
                args=(execution_id,),
                result_ttl=RESULT_TTL_S,
                failure_ttl=FAILURE_TTL_S,
            )
    except redis.RedisError as exc:
        raise QueueError(f"could not queue execution {execution_id}: {exc}") from exc
