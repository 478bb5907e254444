"""Engine errors; the tree is drawn in ``rules.errors``."""

from __future__ import annotations

from rules.errors import HookwiseError


class ConfigError(HookwiseError):
    """A HOOKWISE_* setting is missing or malformed."""


class StorageError(HookwiseError):
    """The database could not be reached or refused a write."""


class QueueError(HookwiseError):
    """Redis could not be reached to enqueue work."""


class VerificationError(HookwiseError):
    """An incoming webhook failed verification (signature, token, timestamp)."""


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
