"""``POST /hooks/<source>``: translate the request for ``engine.ingest`` and back."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from engine.ingest import ingest
from engine.signatures import IncomingRequest
from web.context import runtime

bp = Blueprint("ingest", __name__)


def incoming() -> IncomingRequest:
    headers: dict[str, str] = {}
    for k, v in request.headers.items():
        k = k.lower()
        headers[k] = f"{headers[k]}, {v}" if k in headers else v
    query = {k: (v[0] if len(v) == 1 else v) for k, v in request.args.to_dict(flat=False).items()}
    return IncomingRequest(
        method=request.method,
        url="",
        url_factory=lambda: request.url,  # called while the request is handled
        headers=headers,
        query=query,
        body=request.get_data(cache=False),
        content_type=request.content_type or "",
        remote_addr=request.remote_addr,
    )


@bp.post("/hooks/<source>")
@bp.put("/hooks/<source>")
def hook(source: str) -> Response:
    result = ingest(runtime(), source, incoming())
    if result.raw is not None:
        resp = Response(result.raw, status=result.status)
    else:
        resp = jsonify(result.body) if result.body is not None else Response(b"")
        resp.status_code = result.status
    for k, v in result.headers.items():
        resp.headers[k] = v
    return resp
