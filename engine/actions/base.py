"""The contract between the chain runner and an action type.

An action is a function ``run(rendered, ctx) -> output``:

- ``rendered`` is the step's configuration with every template already rendered
  (a plain dict: e.g. for ``webhook`` ``{"url": ..., "method": ..., "headers": {...},
  "json": ...}``). The keys ``id``, ``type``, ``when``, ``on_error`` and ``retry`` are
  removed before the call.
- ``output`` is a JSON-serialisable dict: what later steps see as ``steps.<id>``.
- Failures raise ``TransientActionError`` (retry with backoff; may set
  ``retry_after``) or ``PermanentActionError`` (fail the step now), both with a
  one-sentence reason and, where something was observed, ``output``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import httpx
    from sqlalchemy.engine import Engine

    from engine.settings import Settings


@dataclass
class StepContext:
    """What an action may use for one attempt of one step: built by the chain runner per
    step from the worker's Runtime (the clients and engines in it are shared)."""

    settings: Settings
    execution_id: str
    step_id: str
    attempt: int  # 1 for the first try
    http: httpx.Client  # egress-guarded client, no redirects followed
    db: Engine  # the engine's own database
    # name -> SQLAlchemy URL lookup for db_write connections other than "default"
    resolve_secret: Callable[[str], str] = field(default=lambda name: "")
    # cached SQLAlchemy engines for named connections, keyed by URL
    engines: dict[str, Engine] = field(default_factory=dict)
    event_id: str = ""
    redis: Any = None  # the queue's Redis client (reply steps publish through it)

    @property
    def idempotency_key(self) -> str:
        return f"{self.execution_id}:{self.step_id}"


class Action(Protocol):
    def __call__(self, rendered: dict[str, Any], ctx: StepContext) -> dict[str, Any]: ...
