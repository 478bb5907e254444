"""Running an execution's action chain, one checkpointed step at a time.

A step is claimed with a conditional update (pending/waiting → running), rendered,
carried out, and its result committed before the next step starts; so a crash or a
duplicate job resumes at the step that did not finish, and finished steps are never
repeated. Steps run back to back in one job until a delay or a retry needs a later
time; then the execution is scheduled on RQ and the job ends.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

from sqlmodel import Session, select

from engine.actions import ACTIONS, StepContext
from engine.broker import queue as q
from engine.errors import ActionError, PermanentActionError, QueueError
from engine.ids import utcnow
from engine.run.limits import TEMPLATE_CPU_LIMIT_S, cpu_time_limit
from engine.run.release import no_reply_coming
from engine.run.retry import next_delay
from engine.runtime import Runtime
from engine.store import statements as sql
from engine.store.conversations import StateStore
from engine.store.models import (
    FINISHED_STEP,
    Event,
    Execution,
    ExecutionStatus,
    StepRun,
    StepStatus,
    event_document,
)
from engine.store.secrets import SecretsView, redact, redact_headers
from rules.compiled import CompiledRule, CompiledStep
from rules.errors import TemplateError

log = logging.getLogger(__name__)

EARLY_TOLERANCE_S = 1.0


def template_context(
    rt: Runtime, doc: dict[str, Any], rule: CompiledRule, outputs: dict[str, Any],
    secrets: SecretsView,
) -> dict[str, Any]:
    states = StateStore(rt.db)
    return {
        **doc,
        "steps": outputs,
        "secrets": secrets,
        "state": states.get,
        "rule": {"name": rule.name, "version": getattr(rule, "version", None)},
        "now": utcnow().isoformat(),
    }


def stored_input(rendered: Any, used: Any) -> Any:
    """A step's rendered input as it is recorded: secrets (and credential headers)
    redacted."""
    out = redact(rendered, used)
    if isinstance(out, dict) and "headers" in out:
        out = {**out, "headers": redact_headers(out["headers"])}
    return out


def render_bounded(cstep: CompiledStep, context: dict[str, Any]) -> dict[str, Any]:
    """Render a step's templates with a CPU-time limit (TemplateError when exceeded)."""
    def too_slow() -> TemplateError:
        return TemplateError(f"rendering took more than {TEMPLATE_CPU_LIMIT_S:g} s of CPU "
                             "time; simplify the template's loops")

    with cpu_time_limit(TEMPLATE_CPU_LIMIT_S, too_slow):
        return cstep.render(context)


def _succeeded() -> dict[str, Any]:
    now = utcnow()
    return {"status": ExecutionStatus.succeeded, "updated_at": now, "finished_at": now,
            "error": None}


class ChainRunner:
    """Runs executions for one Runtime (one per worker process)."""

    def __init__(self, rt: Runtime):
        self.rt = rt

    def run(self, execution_id: str, *,
            loaded: tuple[Execution, Event, list[StepRun]] | None = None,
            first_claimed: bool = False) -> ExecutionStatus | None:
        """Run the execution's remaining steps; answer its status afterwards.

        ``loaded``: the execution, its event and its steps as the caller just wrote them
        (process_event), saving the reads. ``first_claimed``: the caller wrote the first
        step already claimed by this worker (running, attempt 1) in the same transaction
        that created it; ``steps`` holds it as it was before that claim."""
        if loaded is not None:
            ex, event, steps = loaded
        else:
            found = self._load(execution_id)
            if found is None:
                return None
            ex, event, steps = found
        if ex.status in (ExecutionStatus.succeeded, ExecutionStatus.failed):
            return ExecutionStatus(ex.status)
        rule = self.rt.catalog.compiled_revision(ex.rule_name, ex.rule_version)
        doc = event_document(event)
        outputs = {st.step_id: st.output for st in steps if st.status == StepStatus.succeeded}
        if ex.status != ExecutionStatus.running:
            self._set_execution(execution_id, ExecutionStatus.running)

        for i, st in enumerate(steps):
            if st.status in FINISHED_STEP:
                continue
            cstep = rule.steps[st.position]
            outcome = self._run_step(ex, event, rule, cstep, st, doc, outputs,
                                     last=i == len(steps) - 1,
                                     claimed=first_claimed and i == 0)
            if outcome == "continue":
                continue
            # succeeded (the last step finished the execution) / failed: the chain ended
            if outcome in (ExecutionStatus.succeeded, ExecutionStatus.failed):
                self._ended_without_reply(ex, event, rule, outputs)
            return outcome  # or waiting / None (someone else has it)
        self._set_execution(execution_id, ExecutionStatus.succeeded, finished=True)
        self._ended_without_reply(ex, event, rule, outputs)
        return ExecutionStatus.succeeded

    def _load(self, execution_id: str) -> tuple[Execution, Event, list[StepRun]] | None:
        with Session(self.rt.db) as s:
            ex = s.get(Execution, execution_id)
            if ex is None:
                log.warning("execution %s not found", execution_id)
                return None
            event = s.get(Event, ex.event_id)
            steps = list(s.exec(select(StepRun).where(StepRun.execution_id == execution_id)
                                .order_by(StepRun.position)))  # type: ignore[arg-type]
        assert event is not None
        return ex, event, steps

    def _ended_without_reply(self, ex: Execution, event: Event, rule: CompiledRule,
                             outputs: dict[str, Any]) -> None:
        """A chain that could reply ended without replying: if no other open chain of
        this event can, release the waiting caller to its fallback now."""
        reply_ids = [s.id for s in rule.steps if s.type == "reply"]
        if not reply_ids or any(i in outputs for i in reply_ids):
            return
        with Session(self.rt.db) as s:
            others = s.exec(select(Execution.id).where(
                Execution.event_id == ex.event_id, Execution.match_round == ex.match_round,
                Execution.id != ex.id,
                Execution.status.not_in([ExecutionStatus.succeeded,  # type: ignore[attr-defined]
                                         ExecutionStatus.failed]))).first()
        if others is None:
            no_reply_coming(self.rt, event.source, event.id)

    # -- one step ----------------------------------------------------------------------
    def _run_step(
        self, ex: Execution, event: Event, rule: CompiledRule, cstep: CompiledStep,
        st: StepRun, doc: dict[str, Any], outputs: dict[str, Any], *, last: bool = False,
        claimed: bool = False,
    ) -> Any:
        """Run one step. ``last``: no step follows, so success also finishes the
        execution (in the step's transaction)."""
        now = utcnow()
        if st.status == StepStatus.running:
            return None  # another job has it, or it crashed: the sweeper decides
        if st.status == StepStatus.waiting and st.next_attempt_at is not None:
            if st.next_attempt_at > now + timedelta(seconds=EARLY_TOLERANCE_S):
                return None  # an early duplicate job; the scheduled one will come

        if cstep.when is not None and st.status == StepStatus.pending:
            verdict = cstep.when.evaluate({**doc, "steps": outputs})
            if not verdict.matched:
                self._finish(st, StepStatus.skipped, error=None,
                             output={"skipped": verdict.reason})
                return "continue"

        secrets = SecretsView(self.rt.secrets)
        context = template_context(self.rt, doc, rule, outputs, secrets)

        if cstep.type == "delay":
            return self._delay(ex, st, cstep, context, outputs)

        if not claimed and not self._claim(st):
            return None
        started = time.monotonic()
        rendered: dict[str, Any] | None = None
        try:
            rendered = render_bounded(cstep, context)
            call_args = self._resolve_signing(rendered, secrets)
            action = ACTIONS[cstep.type]
            ctx = StepContext(
                settings=self.rt.settings, execution_id=ex.id, step_id=cstep.id,
                attempt=st.attempts + 1, http=self.rt.http, db=self.rt.db,
                resolve_secret=self.rt.secrets.get, engines=self.rt.named_engines,
                event_id=event.id, redis=self._redis_or_none(),
            )
            output = action(call_args, ctx)
        except TemplateError as exc:
            return self._failed(ex, st, cstep, f"template error: {exc}", rendered, None,
                                secrets, started, owned=True)
        except ActionError as exc:
            attempt = st.attempts + 1
            if exc.transient:
                delay = next_delay(cstep.spec.retry, cstep.type, attempt,
                                   retry_after=exc.retry_after)
                if delay is not None:
                    return self._retry_later(ex, st, str(exc), rendered, exc.output, secrets,
                                             started, delay)
                reason = f"{exc} (gave up after {attempt} attempts)"
            else:
                reason = str(exc)
            return self._failed(ex, st, cstep, reason, rendered, exc.output, secrets, started,
                                owned=True)
        except Exception as exc:  # a bug or an unexpected library error: record it
            log.exception("step %s of %s crashed", cstep.id, ex.id)
            return self._failed(ex, st, cstep, f"internal error: {type(exc).__name__}: {exc}",
                                rendered, None, secrets, started, owned=True)
        outputs[cstep.id] = redact(output, secrets.used.values())
        if not self._finish(st, StepStatus.succeeded,
                            rendered=stored_input(rendered, secrets.used.values()),
                            output=outputs[cstep.id], started=started, owned=True,
                            then_execution=_succeeded() if last else None):
            return None  # the sweeper gave this step to another worker meanwhile
        return ExecutionStatus.succeeded if last else "continue"

    def _redis_or_none(self) -> Any:
        try:
            return self.rt.redis
        except Exception:
            return None

    @staticmethod
    def _resolve_signing(rendered: dict[str, Any], secrets: SecretsView) -> dict[str, Any]:
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

    def _delay(self, ex: Execution, st: StepRun, cstep: CompiledStep,
               context: dict[str, Any], outputs: dict[str, Any]) -> Any:
        if st.status == StepStatus.waiting:  # the delay is over
            outputs[cstep.id] = {"waited_s": st.output.get("seconds") if st.output else None}
            self._finish(st, StepStatus.succeeded, output=outputs[cstep.id])
            return "continue"
        try:
            seconds = float(render_bounded(cstep, context).get("seconds") or 0)
        except (TemplateError, TypeError, ValueError) as exc:
            return self._failed(ex, st, cstep, f"delay seconds: {exc}", None, None,
                                SecretsView(self.rt.secrets), time.monotonic())
        due = utcnow() + timedelta(seconds=seconds)
        self._update_step(st, status=StepStatus.waiting, next_attempt_at=due,
                          output={"seconds": seconds}, started_at=utcnow())
        return self._schedule(ex, seconds)

    # -- bookkeeping ---------------------------------------------------------------------
    def _claim(self, st: StepRun) -> bool:
        with self.rt.db.begin() as conn:
            res = conn.execute(sql.CLAIM_STEP, {
                "k_execution_id": st.execution_id, "k_position": st.position,
                "started_at": utcnow(), "claimed_by": self.rt.worker_name})
        return bool(res.rowcount)

    def _update_step(self, st: StepRun, *, owned: bool = False,
                     then_execution: dict[str, Any] | None = None, **values: Any) -> bool:
        """Write the step; with ``owned``, only while this worker still holds its claim
        (the sweeper may have given the step to another worker). ``then_execution``:
        values for the execution, written in the same transaction if the step was.
        Answers whether it wrote."""
        me = self.rt.worker_name
        stmt = sql.update_step(tuple(values), owned, me is not None)
        params = {"k_execution_id": st.execution_id, "k_position": st.position,
                  "k_me": me, **values}
        with self.rt.db.begin() as conn:
            wrote = bool(conn.execute(stmt, params).rowcount)
            if wrote and then_execution is not None:
                conn.execute(sql.update_execution(tuple(then_execution)),
                             {"k_id": st.execution_id, **then_execution})
            return wrote

    def _finish(self, st: StepRun, status: StepStatus, *, error: str | None = None,
                rendered: Any = None, output: Any = None, started: float | None = None,
                owned: bool = False, then_execution: dict[str, Any] | None = None) -> bool:
        values: dict[str, Any] = {"status": status, "error": error, "finished_at": utcnow(),
                                  "output": output, "next_attempt_at": None}
        if rendered is not None:
            values["rendered"] = rendered
        if started is not None:
            values["duration_ms"] = round((time.monotonic() - started) * 1000, 2)
        return self._update_step(st, owned=owned, then_execution=then_execution, **values)

    def _failed(self, ex: Execution, st: StepRun, cstep: CompiledStep, reason: str,
                rendered: Any, output: Any, secrets: SecretsView, started: float, *,
                owned: bool = False) -> Any:
        used = secrets.used.values()
        reason = redact(reason, used)
        if not self._finish(st, StepStatus.failed, error=reason,
                            rendered=stored_input(rendered, used), output=redact(output, used),
                            started=started, owned=owned):
            return None  # no longer ours: the worker that has it decides
        if cstep.spec.on_error == "continue":
            return "continue"
        self._set_execution(ex.id, ExecutionStatus.failed, error=f"step {cstep.id}: {reason}",
                            finished=True)
        return ExecutionStatus.failed

    def _retry_later(self, ex: Execution, st: StepRun, reason: str, rendered: Any,
                     output: Any, secrets: SecretsView, started: float, delay: float) -> Any:
        used = secrets.used.values()
        if not self._update_step(
            st, owned=True, status=StepStatus.waiting, error=redact(reason, used),
            rendered=stored_input(rendered, used), output=redact(output, used),
            next_attempt_at=utcnow() + timedelta(seconds=delay),
            duration_ms=round((time.monotonic() - started) * 1000, 2),
        ):
            return None
        return self._schedule(ex, delay)

    def _schedule(self, ex: Execution, delay: float) -> ExecutionStatus:
        self._set_execution(ex.id, ExecutionStatus.waiting)
        try:
            q.enqueue_execution(self.rt.queue, ex.id, delay_s=delay)
        except QueueError as exc:
            log.warning("%s; the sweeper will pick execution %s up", exc, ex.id)
        return ExecutionStatus.waiting

    def _set_execution(self, execution_id: str, status: ExecutionStatus, *,
                       error: str | None = None, finished: bool = False) -> None:
        values: dict[str, Any] = {"status": status, "updated_at": utcnow()}
        if finished:
            values["finished_at"] = utcnow()
            values["error"] = error
        with self.rt.db.begin() as conn:
            conn.execute(sql.update_execution(tuple(values)), {"k_id": execution_id, **values})
