"""The engine's errors, all in this one module; ``rules.errors`` holds the base and the
rule language's own.

    HookwiseError (rules.errors)
    ├── (rules.errors)            RuleValidationError, PathError, TemplateError, ...
    ├── ConfigError               a HOOKWISE_* setting is missing or malformed
    ├── StorageError              the database could not be reached or refused a write
    ├── DuplicateEvent            the (source, dedup key) is stored already (a signal)
    ├── QueueError                Redis could not be reached to enqueue work
    ├── VerificationError         an incoming webhook is not genuine (HTTP 401)
    ├── RequestError              an incoming webhook cannot be read
    │   ├── BodyError             the body does not parse as its type (HTTP 400)
    │   └── UnsupportedMediaType  a content type Hookwise does not read (HTTP 415)
    ├── SecretNotFound            a rule names a secret that is not stored
    ├── InvalidSecret             a secret's name or value cannot be stored (``field``)
    ├── AccountError              a user or token cannot be created as asked
    ├── NotFound                  no such event or execution
    ├── Conflict                  the operation does not apply in the object's state
    ├── ActionError               a step's action failed
    │   ├── TransientActionError  retried with backoff (connect errors, timeouts, 429, 5xx)
    │   └── PermanentActionError  fails the step at once (4xx, bad configuration)
    └── EgressRefused             an outgoing call to a forbidden address; defined in
                                  engine.outbound.egress, as it must also be an
                                  httpx.ConnectError for httpx's transport

Library errors are translated where they enter (``raise StorageError(...) from exc``);
broad ``except Exception`` is used only around a rule, a step or a job, and what it
caught is recorded.
"""

from __future__ import annotations

from rules.errors import HookwiseError

__all__ = [
    "AccountError", "ActionError", "BodyError", "ConfigError", "Conflict", "DuplicateEvent",
    "HookwiseError", "InvalidSecret", "NotFound", "PermanentActionError", "QueueError",
    "RequestError", "SecretNotFound", "StorageError", "TransientActionError",
    "UnsupportedMediaType", "VerificationError",
]


class ConfigError(HookwiseError):
    """A HOOKWISE_* setting is missing or malformed."""


class StorageError(HookwiseError):
    """The database could not be reached or refused a write."""


class DuplicateEvent(HookwiseError):
    """An event with the same (source, dedup key) is stored already: ``event_id`` is
    the one that was."""

    def __init__(self, event_id: str):
        super().__init__(event_id)
        self.event_id = event_id


class QueueError(HookwiseError):
    """Redis could not be reached to enqueue work."""


class VerificationError(HookwiseError):
    """An incoming webhook failed verification (signature, token, timestamp)."""


class RequestError(HookwiseError):
    """An incoming webhook cannot be read."""


class BodyError(RequestError):
    """The body does not parse as its declared content type (HTTP 400)."""


class UnsupportedMediaType(RequestError):
    """The content type is not one Hookwise reads (HTTP 415)."""


class SecretNotFound(HookwiseError):
    """A rule names a secret that is not stored."""


class InvalidSecret(HookwiseError):
    """A secret cannot be stored as given: ``field`` is ``"name"`` or ``"value"``, the
    message says why."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


class AccountError(HookwiseError):
    """A user or token cannot be created as asked (the message says why)."""


class NotFound(HookwiseError):
    """No such event or execution."""


class Conflict(HookwiseError):
    """The operation does not apply in the object's current state."""


class ActionError(HookwiseError):
    """A step's action failed.

    ``transient`` errors (connect errors, timeouts, 429, 5xx) are retried with backoff;
    the others fail the step at once. ``retry_after`` (seconds) is honoured when set.
    ``output`` carries what was observed (e.g. the HTTP response) for the step record.
    """

    transient: bool = False

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        output: dict | None = None,
    ):
        super().__init__(message)
        self.retry_after = retry_after
        self.output = output


class TransientActionError(ActionError):
    transient = True


class PermanentActionError(ActionError):
    transient = False
