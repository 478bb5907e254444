"""``/api/v1/executions``: runs of rules' action chains — list, get with steps, retry,
retry a waiting step now, cancel, and bulk retry with its progress."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Response, g, jsonify

from engine.errors import Conflict, NotFound
from engine.run.control import (
    batch_progress,
    cancel_execution,
    failed_matching,
    retry_many,
    retry_now,
)
from engine.run.replay import retry_execution
from engine.store.queries import get_execution, list_executions
from rules.errors import PathError
from web.api.errors import body, conflict, invalid_field, not_found, query
from web.api.registry import operation
from web.api.run_models import (
    BatchOut,
    BulkRetryIn,
    BulkRetryOut,
    CancelOut,
    ExecutionDetail,
    ExecutionPage,
    ExecutionQuery,
    RetryNowOut,
    RetryOut,
)
from web.context import runtime


def _utc(ts: datetime | None) -> datetime | None:
    return ts.replace(tzinfo=UTC) if ts is not None and ts.tzinfo is None else ts


@operation("GET", "/executions", tag="executions", summary="List executions",
           description="Newest first.", query=ExecutionQuery, responses={200: ExecutionPage},
           errors=(422,))
def executions() -> Response:
    q = query(ExecutionQuery)
    page = list_executions(runtime().db, status=q.status, rule=q.rule, event_id=q.event_id,
                           limit=q.capped_limit, offset=q.offset)
    return jsonify(page.as_dict())


@operation("GET", "/executions/<execution_id>", tag="executions",
           summary="Get an execution with its steps",
           description="Each step's rendered input, output, attempts, timing and error "
                       "(secrets redacted).",
           responses={200: ExecutionDetail}, errors=(404,))
def execution(execution_id: str) -> Response:
    found = get_execution(runtime().db, execution_id)
    if found is None:
        raise not_found(f"execution {execution_id!r}")
    return jsonify(found)


@operation("POST", "/executions/<execution_id>/retry", tag="executions",
           summary="Retry a failed execution",
           description="Resumes at the failed step with the rule version it ran with; "
                       "finished steps are not repeated. 409 unless the execution failed.",
           responses={202: RetryOut}, errors=(404, 409))
def retry(execution_id: str) -> tuple[Response, int]:
    try:
        retry_execution(runtime(), execution_id)
    except NotFound:
        raise not_found(f"execution {execution_id!r}") from None
    except Conflict as exc:
        raise conflict(str(exc)) from None
    return jsonify({"execution_id": execution_id, "status": "pending"}), 202


@operation("POST", "/executions/<execution_id>/retry-now", tag="executions",
           summary="Run a waiting step now",
           description="The step waiting for its next attempt (or for a delay to end) runs "
                       "at once; its schedule is cleared. 409 unless the execution is "
                       "waiting.",
           responses={202: RetryNowOut}, errors=(404, 409))
def retry_step_now(execution_id: str) -> tuple[Response, int]:
    try:
        step_id = retry_now(runtime(), execution_id)
    except NotFound:
        raise not_found(f"execution {execution_id!r}") from None
    except Conflict as exc:
        raise conflict(str(exc)) from None
    return jsonify({"execution_id": execution_id, "step_id": step_id,
                    "status": "waiting"}), 202


@operation("POST", "/executions/<execution_id>/cancel", tag="executions",
           summary="Cancel a waiting execution",
           description="A pending or waiting execution ends as `failed` with the error "
                       "`cancelled by …`; its waiting step fails, later steps are skipped. "
                       "409 when it is running or finished.",
           responses={200: CancelOut}, errors=(404, 409))
def cancel(execution_id: str) -> Response:
    by = getattr(g, "principal", None)
    try:
        error = cancel_execution(runtime(), execution_id, by=by)
    except NotFound:
        raise not_found(f"execution {execution_id!r}") from None
    except Conflict as exc:
        raise conflict(str(exc)) from None
    return jsonify({"execution_id": execution_id, "status": "failed", "error": error})


@operation("POST", "/executions/retry", tag="executions",
           summary="Retry many failed executions",
           description="Retries the listed failed executions, or (without "
                       "`execution_ids`) every failed execution of the latest round of the "
                       "events the filters select (as `GET /events`), at most 1000. Those "
                       "not failed are skipped with the reason. `batch` names the progress "
                       "record (`GET /executions/batches/{batch}`).",
           body=BulkRetryIn, responses={202: BulkRetryOut}, errors=(400, 422))
def bulk_retry() -> tuple[Response, int]:
    opts = body(BulkRetryIn)
    rt = runtime()
    if opts.execution_ids is not None:
        ids = opts.execution_ids
    else:
        try:
            ids = failed_matching(rt, source=opts.source, status=opts.status,
                                  since=_utc(opts.since), until=_utc(opts.until),
                                  text=opts.q, path=opts.path,
                                  value=opts.value if opts.path else None)
        except PathError as exc:
            raise invalid_field("path", f"not a valid JSONPath: {exc}", opts.path) from None
    return jsonify(retry_many(rt, ids).as_dict()), 202


@operation("GET", "/executions/batches/<batch>", tag="executions",
           summary="Progress of a bulk retry",
           description="How many of the batch's executions finished (succeeded or failed) "
                       "and how many are still open. Batches are kept a day.",
           responses={200: BatchOut}, errors=(404,))
def batch(batch: str) -> Response:
    found = batch_progress(runtime(), batch)
    if found is None:
        raise not_found(f"bulk retry {batch!r}")
    return jsonify(found)
