"""``/api/v1/executions``: runs of rules' action chains — list, get with steps, retry."""

from __future__ import annotations

from flask import Response, jsonify

from engine.errors import Conflict, NotFound
from engine.run.replay import retry_execution
from engine.store.queries import get_execution, list_executions
from web.api.errors import conflict, not_found, query
from web.api.registry import operation
from web.api.run_models import ExecutionDetail, ExecutionPage, ExecutionQuery, RetryOut
from web.context import runtime


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
