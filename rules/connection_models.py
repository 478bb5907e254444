"""Connections (SPEC "Connections and destinations"): a named base URL, auth and default
headers that a webhook step uses with ``connection: NAME`` and a relative ``url``.

Credentials are the NAMES of stored secrets, never values. A typed connection
(``slack``, ``telegram``, ``discord``, ``teams``, ``twilio``, ``stripe``) knows its
service's base URL, auth shape and how the service reports a failure; ``http`` (the
default) is any HTTP API. The engine's side is ``engine.outbound.connections``.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Discriminator, Field, ValidationError, field_validator, model_validator

from rules.errors import FieldError, RuleValidationError
from rules.model_base import SLUG_PATTERN, SecretName, StrictModel
from rules.validation import field_errors

ConnectionType = Literal["http", "slack", "telegram", "discord", "teams", "twilio", "stripe"]

DEFAULT_BASE_URLS: dict[str, str] = {
    "slack": "https://slack.com/api",
    "telegram": "https://api.telegram.org",
    "discord": "https://discord.com/api/v10",
    "twilio": "https://api.twilio.com/2010-04-01",
    "stripe": "https://api.stripe.com/v1",
}
"""Where each typed connection calls when ``base_url`` is not given (``http`` and
``teams`` have none: a Teams incoming webhook's URL is its own)."""

SERVICE_DESTINATIONS: dict[str, dict[str, Any]] = {
    # the Bot API's documented limit: about 30 messages a second per bot
    "api.telegram.org": {"host": "api.telegram.org", "rate_limit": {"requests": 30, "per_s": 1}},
    # Discord's global limit: 50 requests a second per bot
    "discord.com": {"host": "discord.com", "rate_limit": {"requests": 50, "per_s": 1}},
    # Stripe's live-mode limit: 100 operations a second
    "api.stripe.com": {"host": "api.stripe.com", "rate_limit": {"requests": 100, "per_s": 1}},
}
"""Destination limits (``destinations:`` entries) the engine applies to these services'
hosts when none is configured for them; Slack, Twilio and the rest are held back by
their 429 answers (Retry-After, the destination's slow-down) instead."""

AUTH_SHAPES: dict[str, tuple[str, ...]] = {
    "slack": ("bearer", "oauth2_client_credentials"),
    "telegram": ("bearer",),  # the bot token, put in the path: /bot<token>/
    "discord": ("bearer", "header"),  # a bot token is sent as "Authorization: Bot <token>"
    "teams": (),
    "twilio": ("basic",),  # username: the account SID (or an API key SID)
    "stripe": ("bearer",),
}
"""The auth types each typed connection accepts (``http`` takes any)."""

AUTH_TYPES = ("bearer", "basic", "header", "query", "oauth2_client_credentials")

HEADER_NAME_PATTERN = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$"


class BearerAuth(StrictModel):
    """``Authorization: Bearer <secret>``."""

    type: Literal["bearer"]
    secret: SecretName


class BasicAuth(StrictModel):
    """HTTP Basic with ``username`` and the secret as password."""

    type: Literal["basic"]
    username: str = Field(min_length=1, max_length=256)
    secret: SecretName

    @field_validator("username")
    @classmethod
    def _no_colon(cls, value: str) -> str:
        if ":" in value:
            raise ValueError("a basic auth username cannot contain ':'")
        return value


class HeaderAuth(StrictModel):
    """An API-key header: ``<name>: <secret>``."""

    type: Literal["header"]
    name: str = Field(pattern=HEADER_NAME_PATTERN)
    secret: SecretName


class QueryAuth(StrictModel):
    """An API key in the query string: ``?<name>=<secret>``."""

    type: Literal["query"]
    name: str = Field(min_length=1, max_length=128)
    secret: SecretName


class OAuth2ClientCredentials(StrictModel):
    """OAuth 2.0 client credentials (RFC 6749 4.4): a token is fetched from ``token_url``
    with ``client_id`` and the secret (HTTP Basic), cached until it expires, sent as a
    bearer token and fetched again when it expires or the API answers 401."""

    type: Literal["oauth2_client_credentials"]
    token_url: str = Field(min_length=1, max_length=2000)
    client_id: str = Field(min_length=1, max_length=512)
    secret: SecretName
    scope: str | None = Field(default=None, max_length=2000)

    @field_validator("token_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return _absolute_url(value, "token_url")


Auth = Annotated[
    BearerAuth | BasicAuth | HeaderAuth | QueryAuth | OAuth2ClientCredentials,
    Discriminator("type"),
]


def _absolute_url(value: str, field: str) -> str:
    value = value.strip()
    try:
        parts = urlsplit(value)
    except ValueError as exc:
        raise ValueError(f"{field} is not a URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{field} must be an absolute http(s) URL, got {value!r}")
    if parts.username or parts.password:
        raise ValueError(f"{field} cannot hold credentials; use auth with a secret name")
    return value


class ConnectionSpec(StrictModel):
    """A named base URL + auth + default headers (SPEC "Connections and destinations")."""

    name: str = Field(pattern=SLUG_PATTERN)
    type: ConnectionType = "http"
    description: str = ""
    base_url: str | None = Field(default=None, max_length=2000)
    auth: Auth | None = None
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        return None if value is None else _absolute_url(value, "base_url")

    @field_validator("headers")
    @classmethod
    def _header_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not re.match(HEADER_NAME_PATTERN, name):
                raise ValueError(f"{name!r} is not a valid header name")
            if name.lower() in ("authorization", "host", "content-length"):
                raise ValueError(f"header {name!r} is set by the connection itself; use auth")
        return value

    @model_validator(mode="after")
    def _shape(self) -> ConnectionSpec:
        if self.base_url is None and self.type not in DEFAULT_BASE_URLS:
            what = "its incoming webhook URL" if self.type == "teams" else "the API's URL"
            raise ValueError(f"a {self.type} connection needs base_url ({what})")
        allowed = AUTH_SHAPES.get(self.type)
        if allowed is not None and self.auth is not None and self.auth.type not in allowed:
            raise ValueError(
                f"a {self.type} connection takes auth "
                + (" or ".join(allowed) if allowed else "none")
                + f", not {self.auth.type}")
        if self.type in ("telegram", "twilio", "stripe") and self.auth is None:
            raise ValueError(f"a {self.type} connection needs auth "
                             f"({' or '.join(AUTH_SHAPES[self.type])}) with a secret name")
        return self

    @property
    def url(self) -> str:
        """The base URL calls are relative to (the type's own when none is given)."""
        return self.base_url or DEFAULT_BASE_URLS[self.type]

    def secret_names(self) -> list[str]:
        return [self.auth.secret] if self.auth is not None else []


def parse_connection(data: Any, *, file: str | None = None,
                     index: int | None = None) -> ConnectionSpec:
    """Validate one connection document; RuleValidationError lists every problem."""
    name = data.get("name") if isinstance(data, dict) else None
    label = (f"connection '{name}'" if isinstance(name, str) and name
             else f"connections[{index}]" if index is not None else "connection")
    try:
        return ConnectionSpec.model_validate(data)
    except ValidationError as exc:
        errors = [_auth_wording(e, data) for e in field_errors(exc, file=file, rule=label)]
        raise RuleValidationError(errors) from None


def _auth_wording(error: FieldError, data: Any) -> FieldError:
    """The shared wording speaks of a step's type; an auth's tag is its auth type."""
    if error.loc != "auth" or not error.message.startswith(("unknown step type", "Unable")):
        return error
    auth = data.get("auth") if isinstance(data, dict) else None
    got = auth.get("type") if isinstance(auth, dict) else None
    message = (f"unknown auth type {got!r} (one of: {', '.join(AUTH_TYPES)})"
               if got is not None else f"auth needs a type (one of: {', '.join(AUTH_TYPES)})")
    return replace(error, message=message)


def dump_connection(spec: ConnectionSpec) -> dict[str, Any]:
    """A plain dict of ``spec`` (defaults left out, ``name`` and ``type`` first)."""
    dumped = spec.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    if "auth" in dumped and spec.auth is not None:
        dumped["auth"] = {"type": spec.auth.type, **dumped["auth"]}
    head = {"name": dumped.pop("name")}
    if "type" in dumped:
        head["type"] = dumped.pop("type")
    return head | dumped
