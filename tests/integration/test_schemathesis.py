"""Schemathesis against the API's own OpenAPI document: every operation, in process
(WSGI), with a bearer token; no generated request may make the server answer 5xx.

One test per operation of the registry (``web.api.registry.OPERATIONS``, which the
document is built from), each a bounded Hypothesis run of schemathesis' positive and
negative cases. (``schemathesis.pytest.from_fixture`` does not work with pytest 9, so
the schema is loaded inside the test.)
"""

from __future__ import annotations

import re

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

import web.api  # noqa: F401  (registers the operations)
from web.api.registry import OPERATIONS, PREFIX

pytestmark = pytest.mark.slow

MAX_EXAMPLES = 20
SEED = """
sources: [{slug: s}]
rules:
  - name: r
    source: s
    actions: [{id: a, type: state, key: k, set: {n: "{{ body.n }}"}}]
"""


def _openapi_path(rule: str) -> str:
    return PREFIX + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule)


OPS = [
    pytest.param(m, p, id=f"{m} {p}")
    for m, p in ((o.method, _openapi_path(o.rule)) for o in OPERATIONS)
]


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
@pytest.mark.parametrize("listing", ["events", "executions"])
def test_huge_offset_is_a_422_not_a_500(api, listing):  # type: ignore[no-untyped-def]
    resp = api.get(f"/api/v1/{listing}?offset={2**63}")
    assert resp.status_code == 422, resp.status_code


@pytest.mark.parametrize(("method", "path"), OPS)
def test_operation_never_answers_a_server_error(app, rt, api_token, work, tmp_path,  # type: ignore[no-untyped-def]
                                                method, path):
    from engine.store.rule_files import apply_paths

    # something for the operations to find: a source, a rule, a secret, a run event
    f = tmp_path / "seed.yaml"
    f.write_text(SEED)
    apply_paths(rt.catalog, [f])
    rt.secrets.set("K", "v")
    app.test_client().post("/hooks/s", json={"n": 1})
    work()

    auth = {"Authorization": f"Bearer {api_token}"}
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app, headers=auth)
    operation = schema[path][method]

    @given(case=st.one_of(operation.as_strategy(GenerationMode.POSITIVE),
                          operation.as_strategy(GenerationMode.NEGATIVE)))
    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case):  # type: ignore[no-untyped-def]
        case.call_and_validate(headers=auth, checks=[not_a_server_error])

    run()
