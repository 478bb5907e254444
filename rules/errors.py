"""Exception tree of Hookwise.

    HookwiseError                 base of every error Hookwise raises on purpose
    ├── RuleValidationError       a source/rule document is invalid (carries FieldErrors)
    ├── PathError                 a JSONPath expression does not compile
    ├── RegexError                a pattern RE2 cannot compile (also a ValueError)
    ├── TemplateError             a template failed to compile or render (undefined name,
    │                             sandbox violation, output too large)
    ├── LimitExceeded             a template hit a size limit while rendering (reported
    │                             to the rule as a TemplateError)
    └── (engine.errors adds)      the engine's tree, drawn there

The web layer's errors (``web.api.errors.ApiError``, ``web.ingest.BodyTooLarge``) and the
CLI's (``cli.common.InputError``) are translations at those edges, not part of this tree.

Library errors are translated where they enter (``raise PathError(...) from exc``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class HookwiseError(Exception):
    """Base of every error Hookwise raises on purpose."""


@dataclass(frozen=True)
class FieldError:
    """One problem in a rule document: where it is and why it is wrong."""

    loc: str  # dotted field path inside the rule/source, e.g. "actions[0].url"
    message: str
    file: str | None = None
    rule: str | None = None  # rule name or "source <slug>"
    value: Any = None

    def __str__(self) -> str:
        parts = []
        if self.file:
            parts.append(self.file)
        if self.rule:
            parts.append(self.rule)
        if self.loc:
            parts.append(f"field {self.loc}")
        where = ": ".join(parts)
        shown = "" if self.value is None else f" (got {self.value!r})"
        return f"{where}: {self.message}{shown}" if where else f"{self.message}{shown}"


class RuleValidationError(HookwiseError):
    """A rule or source document is invalid; ``errors`` lists every problem found."""

    def __init__(self, errors: list[FieldError]):
        self.errors = errors
        super().__init__("; ".join(str(e) for e in errors) or "invalid rule document")


class PathError(HookwiseError):
    """A JSONPath expression does not compile."""


class TemplateError(HookwiseError):
    """A template failed to compile or to render.

    ``template`` is the template text and ``field`` the step field it sits in, when known
    (both optional so ``TemplateError("message")`` keeps working).
    """

    def __init__(self, message: str, *, template: str | None = None, field: str | None = None):
        self.template = template
        self.field = field
        super().__init__(message)


class RegexError(HookwiseError, ValueError):
    """A pattern RE2 cannot compile (syntax, or a backtracking-only feature such as
    back-references or look-around)."""


class LimitExceeded(HookwiseError):
    """A template hit a size limit (output, repetition, power or range)."""
