"""The one step evaluator: what the worker and the dry run both do with a step before
anything is carried out.

For a step and what earlier steps produced it answers whether the step runs (its
``when`` over the event document and ``steps``) and what it renders to (its templates
under the CPU-time limit). The chain runner then carries the rendered step out; the
dry run shows it. Because both call these functions, a dry run can never disagree with
what the worker would do.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from engine.errors import PermanentActionError
from engine.run.limits import TEMPLATE_CPU_LIMIT_S, cpu_time_limit
from engine.store.secrets import SecretsView, redact, redact_headers
from rules.compiled import CompiledRule, CompiledStep
from rules.errors import TemplateError
from rules.secret_refs import SecretNamespace


def skip_reason(step: CompiledStep, doc: Mapping[str, Any],
                outputs: Mapping[str, Any]) -> str | None:
    """Why the step does not run (its ``when`` failed, with the value seen), or None."""
    if step.when is None:
        return None
    verdict = step.when.evaluate({**doc, "steps": outputs})
    return None if verdict.matched else (verdict.reason or "its when condition failed")


def template_context(doc: Mapping[str, Any], rule: CompiledRule, outputs: dict[str, Any], *,
                     secrets: SecretNamespace | Mapping[str, str],
                     state: Callable[[str], dict[str, Any]],
                     now: str) -> dict[str, Any]:
    """What a step's templates see: the event document, earlier steps' results,
    ``secrets``, ``state(key)``, the rule and the time."""
    return {
        **doc,
        "steps": outputs,
        "secrets": secrets,
        "state": state,
        "rule": {"name": rule.name, "version": getattr(rule, "version", None)},
        "now": now,
    }


def render(step: CompiledStep, context: Mapping[str, Any]) -> dict[str, Any]:
    """The step's fields rendered for ``context``, under a CPU-time limit (TemplateError
    when a template fails or takes too long)."""
    def too_slow() -> TemplateError:
        return TemplateError(f"rendering took more than {TEMPLATE_CPU_LIMIT_S:g} s of CPU "
                             "time; simplify the template's loops")

    with cpu_time_limit(TEMPLATE_CPU_LIMIT_S, too_slow):
        return step.render(context)


def stored_input(rendered: Any, used: Any) -> Any:
    """A step's rendered input as it is recorded: secrets (and credential headers)
    redacted."""
    out = redact(rendered, used)
    if isinstance(out, dict) and "headers" in out:
        out = {**out, "headers": redact_headers(out["headers"])}
    return out


def resolve_signing(rendered: dict[str, Any], secrets: SecretsView) -> dict[str, Any]:
    """``sign.secret`` names a stored secret; the action gets its value."""
    sign = rendered.get("sign")
    if not isinstance(sign, dict) or not sign.get("secret"):
        return rendered
    name = str(sign["secret"])
    try:
        value = secrets[name]
    except KeyError:
        raise PermanentActionError(f"signing secret {name!r} is not set") from None
    return {**rendered, "sign": {**sign, "secret": value}}
