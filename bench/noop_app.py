"""The no-op baseline: a Flask app whose ``POST /hooks/<source>`` reads the body and
answers ``202 {"event_id": "x"}`` — the same route shape and answer size as Hookwise's
ingest, with nothing behind it. Served by gunicorn with the same settings as
``hookwise web`` in the same benchmark run, so their ratio holds across machines.

    gunicorn -k gthread -w 2 --threads 8 bench.noop_app:app
"""

from __future__ import annotations

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.post("/hooks/<source>")
def hook(source: str):  # type: ignore[no-untyped-def]
    request.get_data(cache=False)
    resp = jsonify({"event_id": "evt_noop"})
    resp.status_code = 202
    return resp


@app.get("/healthz")
def healthz():  # type: ignore[no-untyped-def]
    return {"ok": True}
