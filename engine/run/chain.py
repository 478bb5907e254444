"""Running an execution's action chain, one checkpointed step at a time.

A step is claimed with a conditional update (pending/waiting → running), rendered,
carried out, and its result committed before the next step starts; so a crash or a
duplicate job resumes at the step that did not finish, and finished steps are never
repeated. Steps run back to back in one job until a delay or a retry needs a later
time; then the execution is scheduled on RQ and the job ends.

Deciding and rendering a step is ``engine.run.steps`` (shared with the dry run);
writing progress is ``engine.run.record``. A webhook step is admitted to its destination
before it is claimed (``engine.run.admission``): a paused or rate-limited destination
makes it wait without spending an attempt, and with a ``Gate`` (the worker's
``engine.run.dispatch.Dispatcher``) a destination whose share of threads is in use
*parks* the chain; ``run`` then answers the destination it waits for.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlmodel import Session, select

from engine.actions import ACTIONS, StepContext
from engine.actions.emit import emit_event
from engine.actions.webhook import destination_url
from engine.broker import deferred
from engine.broker import queue as q
from engine.errors import ActionError, QueueError
from engine.ids import utcnow
from engine.outbound.destinations import destination_of
from engine.run import flow, steps
from engine.run.admission import Admitter, Gate, Hold, Parked, Ticket
from engine.run.outcomes import Outcome, RunResult
from engine.run.record import Recorder, elapsed_ms, execution_values, remember
from engine.run.release import no_reply_coming
from engine.run.retry import next_delay
from engine.run.steps import resolve_signing, stored_input
from engine.runtime import Runtime
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
from engine.store.secrets import SecretsView, redact
from rules.compiled import CompiledRule, CompiledStep
from rules.errors import TemplateError

log = logging.getLogger(__name__)

EARLY_TOLERANCE_S = 1.0
HOLD_SPREAD_S = 1.0
BLOCK_REFRESH_S = 60.0  # a long block's claim is renewed this often (the sweeper's clock)


@dataclass
class _Run:
    """One turn of one execution: what every step of it reads."""

    ex: Execution
    event: Event
    rule: CompiledRule
    doc: dict[str, Any]
    outputs: dict[str, Any]
    tree: flow.Tree


class ChainRunner:
    """Runs executions for one Runtime (one per worker process)."""

    def __init__(self, rt: Runtime, *, gate: Gate | None = None):
        self.rt = rt
        self.admitter = Admitter(rt, gate)

    @property
    def record(self) -> Recorder:
        # per call: the worker's name changes when its RQ loop restarts
        return Recorder(self.rt.statement_writer, self.rt.worker_name)

    def run(self, execution_id: str, *,
            loaded: tuple[Execution, Event, list[StepRun]] | None = None,
            first_claimed: bool = False) -> RunResult:
        """Run the execution's remaining steps; answer how it was left.

        ``loaded``: the execution, its event and its steps as the caller just wrote them
        (``engine.run.batch``), saving the reads. ``first_claimed``: the caller wrote the
        first step already claimed by this worker (running, attempt 1) in the same
        transaction that created it; ``steps`` holds it as it was before that claim."""
        found = loaded if loaded is not None else self._load(execution_id)
        if found is None:
            return RunResult(None)
        ex, event, step_runs = found
        if ex.status in (ExecutionStatus.succeeded, ExecutionStatus.failed):
            return RunResult(ExecutionStatus(ex.status))
        rule = self.rt.catalog.compiled_revision(ex.rule_name, ex.rule_version)
        doc = event_document(event)
        tree = flow.Tree(step_runs)
        outputs: dict[str, Any] = {}
        for st in sorted(step_runs, key=lambda r: r.position):  # later rows: later items
            if st.status == StepStatus.succeeded:
                outputs[st.step_id] = st.output
        if ex.status != ExecutionStatus.running:
            self.record.set_execution(execution_id, ExecutionStatus.running)

        top = [st for st in step_runs if getattr(st, "parent_position", None) is None]
        run = _Run(ex, event, rule, doc, outputs, tree)
        outcome: Outcome | Parked = Outcome.SUCCEEDED
        for i, st in enumerate(top):
            if st.status in FINISHED_STEP:
                continue
            cstep = rule.steps[st.position]
            last = i == len(top) - 1
            if cstep.is_block:
                outcome = self._run_block(run, cstep, st, flow.TOP, last=last)
            else:
                outcome = self._run_step(ex, event, rule, cstep, st, doc, outputs, last=last,
                                         claimed=first_claimed and i == 0)
            if outcome is not Outcome.NEXT:
                break
        else:  # every step was finished already, or the last one went on
            self.record.set_execution(execution_id, ExecutionStatus.succeeded, finished=True)
            outcome = Outcome.SUCCEEDED
        if isinstance(outcome, Parked):
            return RunResult(None, parked_on=outcome.destination)
        if outcome in (Outcome.SUCCEEDED, Outcome.FAILED):
            self._ended_without_reply(ex, event, rule, outputs)
        return RunResult(outcome.status)

    def _load(self, execution_id: str) -> tuple[Execution, Event, list[StepRun]] | None:
        with Session(self.rt.db) as s:
            ex = s.get(Execution, execution_id)
            if ex is None:
                log.warning("execution %s not found", execution_id)
                return None
            event = s.get(Event, ex.event_id)
            step_runs = list(s.exec(select(StepRun).where(StepRun.execution_id == execution_id)
                                    .order_by(StepRun.position)))  # type: ignore[arg-type]
        assert event is not None
        return ex, event, step_runs

    def _ended_without_reply(self, ex: Execution, event: Event, rule: CompiledRule,
                             outputs: dict[str, Any]) -> None:
        """A chain that could reply ended without replying: if no other open chain of
        this event can, release the waiting caller to its fallback now."""
        reply_ids = [s.id for s in rule.all_steps() if s.type == "reply"]
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
        claimed: bool = False, scope: flow.Scope = flow.TOP,
    ) -> Outcome | Parked:
        """Run one step. ``last``: no step follows, so success also finishes the
        execution (in the step's transaction). ``claimed``: the step was written claimed
        by this worker (``st`` is the row as it was before)."""
        now = utcnow()
        if st.status == StepStatus.running:
            return Outcome.NOT_MINE  # another job has it, or it crashed: the sweeper decides
        if st.status == StepStatus.waiting and st.next_attempt_at is not None:
            if st.next_attempt_at > now + timedelta(seconds=EARLY_TOLERANCE_S):
                return Outcome.NOT_MINE  # an early duplicate job; the scheduled one will come

        doc = scope.document(doc)
        if st.status == StepStatus.pending:
            reason = steps.skip_reason(cstep, doc, outputs)
            if reason is not None:
                self.record.finish(st, StepStatus.skipped, output={"skipped": reason})
                return Outcome.NEXT

        secrets = SecretsView(self.rt.secrets)
        context = steps.template_context(doc, rule, outputs, secrets=secrets,
                                         state=StateStore(self.rt.db).get,
                                         now=now.isoformat())
        if cstep.type == "delay":
            return self._delay(ex, st, cstep, context, outputs, scope=scope)

        rendered: dict[str, Any] | None = None
        render_error: TemplateError | None = None
        try:
            rendered = steps.render(cstep, context)
        except TemplateError as exc:
            render_error = exc
        destination = (destination_of(destination_url(self.rt.db, rendered))
                       if rendered is not None and cstep.type == "webhook" else None)
        if destination is None:
            return self._carry_out(ex, event, cstep, st, outputs, secrets, rendered,
                                   render_error, last=last, claimed=claimed, scope=scope)
        verdict = self.admitter.admit(destination)
        if isinstance(verdict, Parked):
            if claimed:
                self.record.unclaim(st)
            return verdict
        if isinstance(verdict, Hold):
            return self._hold(ex, st, verdict, claimed=claimed)
        try:
            return self._carry_out(ex, event, cstep, st, outputs, secrets, rendered,
                                   render_error, last=last, claimed=claimed, ticket=verdict,
                                   scope=scope)
        finally:
            self.admitter.release(verdict)

    def _hold(self, ex: Execution, st: StepRun, hold: Hold, *, claimed: bool) -> Outcome:
        """The destination is paused or rate-limited: the step waits, its attempt kept,
        and comes back when the hold ends (spread a little, so a resumed destination
        is not met by every waiting step at once)."""
        wait = max(hold.until - time.time(), 0.0) + random.uniform(0, HOLD_SPREAD_S)
        if not self.record.hold(st, until=utcnow() + timedelta(seconds=wait),
                                reason=hold.reason, claimed=claimed):
            return Outcome.NOT_MINE
        return self._schedule(ex, wait)

    def _carry_out(self, ex: Execution, event: Event, cstep: CompiledStep, st: StepRun,
                   outputs: dict[str, Any], secrets: SecretsView,
                   rendered: dict[str, Any] | None, render_error: TemplateError | None, *,
                   last: bool, claimed: bool, ticket: Ticket | None = None,
                   scope: flow.Scope = flow.TOP) -> Outcome:
        """Claim the rendered step, call its action, record what happened."""
        if not claimed and not self.record.claim(st):
            return Outcome.NOT_MINE
        started = time.monotonic()
        if render_error is not None or rendered is None:
            return self._failed(ex, st, cstep, f"template error: {render_error}", None, None,
                                secrets, started, scope=scope)
        ctx = StepContext(
            settings=self.rt.settings, execution_id=ex.id,
            step_id=cstep.id + scope.key_suffix,  # Idempotency-Key <execution>:<step>[:<item>]
            attempt=st.attempts + 1, http=self.rt.http, db=self.rt.db,
            resolve_secret=self.rt.secrets.get, engines=self.rt.named_engines,
            event_id=event.id, redis=self._redis_or_none(),
        )
        try:
            if cstep.type == "emit":
                output = emit_event(self.rt, event, rendered, ctx.idempotency_key)
            else:
                output = ACTIONS[cstep.type](
                    secrets.reveal(resolve_signing(rendered, secrets), cstep.type), ctx)
        except ActionError as exc:
            if ticket is not None:
                self.admitter.report(ticket, exc)
            return self._action_failed(ex, st, cstep, exc, rendered, secrets, started,
                                       scope=scope)
        except Exception as exc:  # a bug or an unexpected library error: record it
            log.exception("step %s of %s crashed", cstep.id, ex.id)
            return self._failed(ex, st, cstep, f"internal error: {type(exc).__name__}: {exc}",
                                rendered, None, secrets, started, scope=scope)
        if ticket is not None:
            self.admitter.report(ticket, None)
        outputs[cstep.id] = redact(output, secrets.used.values())
        if not self.record.finish(
            st, StepStatus.succeeded, rendered=stored_input(rendered, secrets.used.values()),
            output=outputs[cstep.id], started=started, owned=True,
            then_execution=execution_values(ExecutionStatus.succeeded, finished=True)
            if last else None,
        ):
            return Outcome.NOT_MINE  # the sweeper gave this step to another worker meanwhile
        return Outcome.SUCCEEDED if last else Outcome.NEXT

    def _action_failed(self, ex: Execution, st: StepRun, cstep: CompiledStep,
                       exc: ActionError, rendered: Any, secrets: SecretsView,
                       started: float, *, scope: flow.Scope = flow.TOP) -> Outcome:
        """Retry a transient failure later while attempts are left; fail otherwise."""
        attempt = st.attempts + 1
        if not exc.transient:
            return self._failed(ex, st, cstep, str(exc), rendered, exc.output, secrets, started,
                                scope=scope)
        delay = next_delay(cstep.spec.retry, cstep.type, attempt, retry_after=exc.retry_after)
        if delay is None:
            return self._failed(ex, st, cstep, f"{exc} (gave up after {attempt} attempts)",
                                rendered, exc.output, secrets, started, scope=scope)
        used = secrets.used.values()
        if not self.record.update_step(
            st, owned=True, status=StepStatus.waiting, error=redact(str(exc), used),
            rendered=stored_input(rendered, used), output=redact(exc.output, used),
            next_attempt_at=utcnow() + timedelta(seconds=delay),
            duration_ms=elapsed_ms(started),
        ):
            return Outcome.NOT_MINE
        return self._schedule(ex, delay)

    def _redis_or_none(self) -> Any:
        try:
            return self.rt.redis
        except Exception:
            return None

    def _delay(self, ex: Execution, st: StepRun, cstep: CompiledStep,
               context: dict[str, Any], outputs: dict[str, Any], *,
               scope: flow.Scope = flow.TOP) -> Outcome:
        if st.status == StepStatus.waiting:  # the delay is over
            outputs[cstep.id] = {"waited_s": st.output.get("seconds") if st.output else None}
            self.record.finish(st, StepStatus.succeeded, output=outputs[cstep.id])
            return Outcome.NEXT
        try:
            seconds = float(steps.render(cstep, context).get("seconds") or 0)
        except (TemplateError, TypeError, ValueError) as exc:
            return self._failed(ex, st, cstep, f"delay seconds: {exc}", None, None,
                                SecretsView(self.rt.secrets), time.monotonic(), owned=False,
                                scope=scope)
        due = utcnow() + timedelta(seconds=seconds)
        self.record.update_step(st, status=StepStatus.waiting, next_attempt_at=due,
                                output={"seconds": seconds}, started_at=utcnow())
        return self._schedule(ex, seconds)

    # -- flow blocks ---------------------------------------------------------------------
    def _run_list(self, run: _Run, csteps: list[CompiledStep],
                  scope: flow.Scope) -> Outcome | Parked:
        """Run a block's list of steps (their rows exist) in ``scope``, in order."""
        for cstep in csteps:
            st = run.tree.get(scope, cstep.id)
            if st is None:  # written with the block's decision: a rule edited since?
                scope.failure = f"step {cstep.id} has no record in this execution"
                return Outcome.FAILED
            if st.status in FINISHED_STEP:
                flow.restore(run.tree, st, run.outputs)
                continue
            if cstep.is_block:
                outcome = self._run_block(run, cstep, st, scope)
            else:
                outcome = self._run_step(run.ex, run.event, run.rule, cstep, st, run.doc,
                                         run.outputs, scope=scope)
            if outcome is not Outcome.NEXT:
                return outcome
        return Outcome.NEXT

    def _run_block(self, run: _Run, cstep: CompiledStep, st: StepRun, scope: flow.Scope,
                   *, last: bool = False) -> Outcome | Parked:
        """A branch or foreach: decide once (stored, with the rows of the steps it runs),
        run those steps, then record the block's result. Held by this worker while it
        runs its steps; given back (waiting) when the turn ends inside it."""
        if st.status == StepStatus.running:
            return Outcome.NOT_MINE
        doc = scope.document(run.doc)
        if st.status == StepStatus.pending and st.rendered is None:
            reason = steps.skip_reason(cstep, doc, run.outputs)
            if reason is not None:
                self.record.finish(st, StepStatus.skipped, output={"skipped": reason})
                return Outcome.NEXT
        if not self.record.claim(st):
            return Outcome.NOT_MINE
        remember(st, status=StepStatus.running)
        started = time.monotonic()
        decision = st.rendered if isinstance(st.rendered, dict) else None
        try:
            if decision is None:
                decision = self._decide(run, cstep, st, scope, doc)
                if decision is None:
                    return Outcome.NOT_MINE
            outcome, why = self._block_steps(run, cstep, st, scope, decision)
        except flow.BlockError as exc:
            return self._block_failed(run, cstep, st, scope, str(exc), started)
        if outcome is Outcome.NEXT:
            output = self._block_output(run, cstep, st, decision)
            run.outputs[cstep.id] = output
            if not self.record.finish(
                    st, StepStatus.succeeded, output=output, started=started, owned=True,
                    then_execution=execution_values(ExecutionStatus.succeeded, finished=True)
                    if last else None):
                return Outcome.NOT_MINE
            return Outcome.SUCCEEDED if last else Outcome.NEXT
        if outcome is Outcome.FAILED:
            return self._block_failed(run, cstep, st, scope, why or "a step failed", started)
        # the turn ends inside the block (a retry, a delay, a parked call, a step held
        # elsewhere): give the block back, so the next turn enters it again
        self.record.update_step(st, owned=True, status=StepStatus.waiting, claimed_by=None,
                                next_attempt_at=None)
        return outcome

    def _decide(self, run: _Run, cstep: CompiledStep, st: StepRun, scope: flow.Scope,
                doc: dict[str, Any]) -> dict[str, Any] | None:
        """The block's decision, written with the rows of the steps it will run, in one
        transaction (None: the block is no longer this worker's)."""
        if cstep.type == "branch":
            label, chosen = flow.choose_case(cstep, doc, run.outputs)
            decision: dict[str, Any] = {"case": label}
            rows = run.tree.new_rows(run.ex.id, scope.inside(st), chosen)
        else:
            context = steps.template_context(doc, run.rule, run.outputs,
                                             secrets=SecretsView(self.rt.secrets),
                                             state=StateStore(self.rt.db).get,
                                             now=utcnow().isoformat())
            items = flow.foreach_items(cstep, doc, run.outputs, context)
            decision = {"items": items, "count": len(items)}
            rows = [row for i in range(len(items))
                    for row in run.tree.new_rows(run.ex.id, scope.inside(st, item=i),
                                                 cstep.body)]
        if not self.record.decide(st, decision, rows):
            return None
        remember(st, rendered=decision)
        run.tree.adopt(rows)
        return decision

    def _block_steps(self, run: _Run, cstep: CompiledStep, st: StepRun, scope: flow.Scope,
                     decision: dict[str, Any]) -> tuple[Outcome | Parked, str | None]:
        """Run the steps the block decided on; answers how the turn left them and, when
        one failed, why."""
        if cstep.type == "branch":
            label = decision.get("case")
            run.outputs[cstep.id] = {"case": label}
            inner = scope.inside(st)
            return self._run_list(run, flow.case_steps(cstep, label), inner), inner.failure
        items = list(decision.get("items") or [])
        body_ids = flow.descendant_ids(cstep.body)
        todo = []
        for i in range(len(items)):
            inner = scope.inside(st, item=i, names=flow.loop_names(cstep, items, i))
            rows = [run.tree.get(inner, b.id) for b in cstep.body]
            if not all(r is not None and r.status in FINISHED_STEP for r in rows):
                todo.append((i, inner))  # finished items (a resumed block) are skipped
        concurrency = int(getattr(cstep.spec, "concurrency", 1) or 1)
        if concurrency > 1 and len(todo) > 1:
            return self._items_in_parallel(run, st, todo, cstep, body_ids, concurrency)
        refreshed = time.monotonic()
        for i, inner in todo:
            for name in body_ids:  # this item's steps see this item's results only
                run.outputs.pop(name, None)
            outcome = self._run_list(run, cstep.body, inner)
            if outcome is not Outcome.NEXT:
                return outcome, f"item {i}: {inner.failure}"
            if time.monotonic() - refreshed > BLOCK_REFRESH_S:  # still ours, the sweeper sees
                self.record.update_step(st, owned=True, started_at=utcnow())
                refreshed = time.monotonic()
        return Outcome.NEXT, None

    def _items_in_parallel(self, run: _Run, st: StepRun, todo: list[tuple[int, flow.Scope]],
                           cstep: CompiledStep, body_ids: list[str], concurrency: int,
                           ) -> tuple[Outcome | Parked, str | None]:
        """``concurrency`` items at once, each on a thread of its own with its own view
        of ``steps`` (each step still claimed and recorded on its own). After a failure
        no further item starts; the turn ends with the first item (by index) that did
        not go on."""
        stop = threading.Event()

        def one(i: int, inner: flow.Scope) -> Outcome | Parked | None:
            if stop.is_set():
                return None
            mine = dict(run.outputs)
            for name in body_ids:
                mine.pop(name, None)
            outcome = self._run_list(
                _Run(run.ex, run.event, run.rule, run.doc, mine, run.tree), cstep.body, inner)
            if outcome is Outcome.FAILED:
                stop.set()
            return outcome

        with ThreadPoolExecutor(max_workers=min(concurrency, len(todo)),
                                thread_name_prefix=f"hookwise-foreach-{cstep.id}") as pool:
            futures = [(i, inner, pool.submit(one, i, inner)) for i, inner in todo]
            results = [(i, inner, f.result()) for i, inner, f in futures]
        self.record.update_step(st, owned=True, started_at=utcnow())  # still ours
        for i, inner, outcome in results:
            if outcome is Outcome.FAILED:
                return outcome, f"item {i}: {inner.failure}"
        for _i, _inner, outcome in results:
            if outcome is not Outcome.NEXT:
                # an item waits (a retry, a parked call) or did not start: the block is
                # entered again next turn, its finished items skipped
                return outcome or Outcome.NOT_MINE, None
        return Outcome.NEXT, None

    def _block_output(self, run: _Run, cstep: CompiledStep, st: StepRun,
                      decision: dict[str, Any]) -> dict[str, Any]:
        if cstep.type == "branch":
            return {"case": decision.get("case")}
        count = int(decision.get("count") or 0)
        results = [run.tree.results(st, item=i) for i in range(count)]
        run.outputs.update(run.tree.results(st))  # the last item's, for the steps after
        return {"items": results, "count": count}

    def _block_failed(self, run: _Run, cstep: CompiledStep, st: StepRun, scope: flow.Scope,
                      reason: str, started: float) -> Outcome:
        outcome = self._failed(run.ex, st, cstep, reason, st.rendered, None,
                               SecretsView(self.rt.secrets), started, scope=scope)
        if outcome is Outcome.NEXT and cstep.type == "foreach":  # on_error: continue
            run.outputs.update(run.tree.results(st))
        return outcome

    # -- ends of a turn -------------------------------------------------------------------
    def _failed(self, ex: Execution, st: StepRun, cstep: CompiledStep, reason: str,
                rendered: Any, output: Any, secrets: SecretsView, started: float, *,
                owned: bool = True, scope: flow.Scope = flow.TOP) -> Outcome:
        """Record the step failed; ``on_error: continue`` goes on with the next step, a
        step inside a block fails the block (``scope.failure`` says why), a top-level
        step fails the execution."""
        used = secrets.used.values()
        reason = redact(reason, used)
        if not self.record.finish(st, StepStatus.failed, error=reason,
                                  rendered=stored_input(rendered, used),
                                  output=redact(output, used), started=started, owned=owned):
            return Outcome.NOT_MINE  # no longer ours: the worker that has it decides
        if cstep.spec.on_error == "continue":
            return Outcome.NEXT
        if scope.nested:
            scope.failure = f"step {cstep.id}: {reason}"
            return Outcome.FAILED
        self.record.set_execution(ex.id, ExecutionStatus.failed,
                                  error=f"step {cstep.id}: {reason}", finished=True)
        return Outcome.FAILED

    def _schedule(self, ex: Execution, delay: float) -> Outcome:
        self.record.set_execution(ex.id, ExecutionStatus.waiting)
        try:
            q.enqueue_execution(self.rt.queue, ex.id, delay_s=delay)
        except QueueError as exc:  # queued again from this process once Redis answers
            deferred.defer(self.rt.queue, ex.id, delay)
            log.warning("%s; execution %s is queued again when Redis is back", exc, ex.id)
        return Outcome.WAITING
