"""Secrets in templates are opaque references, never values.

``{{ secrets.TOKEN }}`` renders to a *reference*: a short string in Unicode private-use
brackets that names the secret and one rendering's random nonce. The value itself never
enters the template engine, so no filter, method, slice, comparison or loop can read,
change or leak it — there is nothing to read. After rendering, the engine resolves the
references of the one step that rendered them (``SecretRefs.reveal``), and only in the
fields of an outgoing request (see ``engine.store.secrets.SecretsView.reveal``); every
stored or displayed record shows ``[secret:TOKEN]`` in their place (``display``).

A reference can be placed whole anywhere in a string (``"Bearer {{ secrets.TOKEN }}"``,
``a ~ ':' ~ b``) and through the filters that encode a whole value for a request field
(``DEFERRED``: ``urlencode``, ``b64encode``, ``tojson``): these apply to the resolved
value at the end. Anything else that would look inside one (``upper``, ``[::-1]``,
``.encode()``, ``|list``, ``|length``) is refused with a clear error: it could only
ever produce a broken reference.

A payload cannot forge a reference: the nonce is drawn when the step renders, after the
event arrived, and references of another rendering (a stored ``steps.x`` value) never
resolve.
"""

from __future__ import annotations

import re
import secrets as _random
import weakref
from collections.abc import Callable, Mapping
from typing import Any

OPEN, CLOSE = "\ue000", "\ue001"
_REF = re.compile(f"{OPEN}([0-9a-f]{{16}})\\|([^{OPEN}{CLOSE}|]*)\\|(\\d+){CLOSE}")

DEFERRED = ("urlencode", "b64encode", "tojson", "json")
"""Filters that take a whole secret: applied to its value once resolved."""

SINK_HELP = ("a secret can only be used whole: put {{ secrets.NAME }} into a URL, "
             "header, body or email field as it is (urlencode, b64encode and tojson "
             "also work)")

_LIVE: weakref.WeakValueDictionary[str, SecretRefs] = weakref.WeakValueDictionary()


class SecretRefused(Exception):
    """A secret that this template may not use (unknown, or kept for verification)."""


class SecretMisuse(Exception):
    """A template tried to look inside a secret, or a step that cannot hold one got one."""


def holds_ref(value: Any, depth: int = 0) -> bool:
    """True when ``value`` (a string, or a JSON-like structure) holds a reference."""
    if isinstance(value, str):
        return OPEN in value
    if depth > 64:
        return False
    if isinstance(value, dict):
        return any(holds_ref(v, depth + 1) for v in value.values())
    if isinstance(value, list | tuple):
        return any(holds_ref(v, depth + 1) for v in value)
    return False


def labels(value: str) -> list[str]:
    """The labels (``secret:TOKEN``) of the references inside ``value``."""
    return [m.group(2) for m in _REF.finditer(value)]


def display(value: Any) -> Any:
    """``value`` as it is stored and shown: each reference becomes ``[secret:NAME]``
    (or ``[b64encode(...)]``), whatever the secret's length or content."""
    if isinstance(value, str):
        return _REF.sub(lambda m: f"[{m.group(2)}]", value) if OPEN in value else value
    if isinstance(value, dict):
        return {k: display(v) for k, v in value.items()}
    if isinstance(value, list):
        return [display(v) for v in value]
    if isinstance(value, tuple):
        return tuple(display(v) for v in value)
    return value


def _clean_label(text: str) -> str:
    text = text.replace("|", "/").replace(OPEN, "").replace(CLOSE, "")
    return text if len(text) <= 120 else text[:119] + "…"


class SecretRefs:
    """The references one rendering made: what each stands for, keyed by its index."""

    def __init__(self) -> None:
        self.nonce = _random.token_hex(8)
        self._entries: list[tuple[str, Any]] = []
        _LIVE[self.nonce] = self

    def __len__(self) -> int:
        return len(self._entries)

    def ref(self, name: str) -> str:
        """A reference to the secret ``name``."""
        return self._add("secret", name, f"secret:{name}")

    def derive(self, kind: str, inner: Any) -> str:
        """A reference to ``kind`` (a DEFERRED filter) applied to ``inner`` once its
        references are resolved."""
        shown = display(inner)
        return self._add(kind, inner, f"{kind}({shown if isinstance(shown, str) else '…'})")

    def _add(self, kind: str, payload: Any, label: str) -> str:
        self._entries.append((kind, payload))
        return f"{OPEN}{self.nonce}|{_clean_label(label)}|{len(self._entries) - 1}{CLOSE}"

    def reveal(self, value: Any, value_of: Callable[[str], str],
               filters: Mapping[str, Callable[[Any], str]]) -> Any:
        """``value`` with this rendering's references resolved: ``value_of(name)`` for
        a secret, ``filters[kind](resolved inner)`` for a derived one. A reference that
        was cut or altered is a SecretMisuse (it would send garbage)."""
        mine = OPEN + self.nonce

        def text(s: str) -> str:
            if mine not in s:
                return s

            def one(m: re.Match[str]) -> str:
                if m.group(1) != self.nonce:
                    return m.group(0)
                kind, payload = self._entries[int(m.group(3))]
                if kind == "secret":
                    return value_of(payload)
                return filters[kind](walk(payload))

            out = _REF.sub(one, s)
            if mine in out:
                raise SecretMisuse(f"a template cut or changed a secret; {SINK_HELP}")
            return out

        def walk(v: Any) -> Any:
            if isinstance(v, str):
                return text(v)
            if isinstance(v, dict):
                return {k: walk(x) for k, x in v.items()}
            if isinstance(v, list | tuple):
                return [walk(x) for x in v]
            return v

        return walk(value)


def owner_of(value: Any) -> SecretRefs | None:
    """The live rendering whose references ``value`` holds (the first one found)."""
    if isinstance(value, str):
        m = _REF.search(value)
        return _LIVE.get(m.group(1)) if m else None
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list | tuple):
        for v in value:
            found = owner_of(v)
            if found is not None:
                return found
    return None


class SecretNamespace:
    """``secrets`` in a template: only ``secrets.NAME`` / ``secrets['NAME']`` work (the
    sandbox routes every attribute and item of this object to ``lookup``); it cannot
    be listed, iterated or printed."""

    def lookup(self, name: str) -> str:  # pragma: no cover - abstract
        """A reference to the secret ``name``; KeyError when there is none,
        SecretRefused when this template may not use it."""
        raise NotImplementedError


class PreviewSecrets(SecretNamespace):
    """``secrets`` in a dry run: references to any name, never a value."""

    def __init__(self) -> None:
        self.refs = SecretRefs()

    def lookup(self, name: str) -> str:
        return self.refs.ref(name)
