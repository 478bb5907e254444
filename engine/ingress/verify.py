"""Verification of an incoming webhook: one table of every scheme, generic and provider.

A scheme is a function ``(spec, request, secret) -> None`` that raises
``VerificationError`` when the request is not genuine; adding one is adding an entry to
``GENERIC`` (``engine.ingress.schemes``) or ``PROVIDERS`` (``engine.ingress.providers``).
"""

from __future__ import annotations

from engine.errors import VerificationError
from engine.ingress.providers import DEFAULT_DEDUP, PROVIDERS
from engine.ingress.schemes import GENERIC, IncomingRequest, Scheme
from engine.store.secrets import value_problem
from rules.schema import DedupSpec, VerifySpec

SCHEMES: dict[str, Scheme] = {**GENERIC, **PROVIDERS}


def verify(spec: VerifySpec, req: IncomingRequest, secret: str) -> None:
    """Run the source's scheme; raise VerificationError when the request is not genuine
    or the source's key is empty (nothing can be verified with an empty key: any sender
    could sign with it)."""
    scheme = SCHEMES.get(spec.scheme)
    if scheme is None:
        raise VerificationError(f"verify scheme {spec.scheme!r} is not supported yet")
    if spec.scheme != "none":
        problem = value_problem(secret)
        if problem is not None:
            raise VerificationError(f"source cannot verify requests: its verify secret "
                                    f"{spec.secret!r} {problem}")
    scheme(spec, req, secret)


def default_dedup(scheme: str) -> DedupSpec | None:
    """The provider's own dedup key (e.g. Stripe's event id), or None."""
    return DEFAULT_DEDUP.get(scheme)
