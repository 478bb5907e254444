"""/api/v1/openapi.json: a valid OpenAPI 3.1 document listing exactly the served routes,
whose schemas describe what the routes really answer."""

from __future__ import annotations

import re

import pytest

from web.api.registry import PREFIX

DOC = f"{PREFIX}/openapi.json"


@pytest.fixture
def doc(api):  # type: ignore[no-untyped-def]
    resp = api.get(DOC)
    assert resp.status_code == 200
    return resp.get_json()


def test_document_is_valid_openapi_3_1(doc):  # type: ignore[no-untyped-def]
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(doc)
    assert doc["openapi"].startswith("3.1")
    assert set(doc["components"]["securitySchemes"]) == {"bearer", "session"}
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert doc["components"]["securitySchemes"]["session"]["in"] == "cookie"


def test_document_lists_every_route(app, doc):  # type: ignore[no-untyped-def]
    served = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(PREFIX + "/"):
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
            served |= {(path, m.lower()) for m in rule.methods - {"HEAD", "OPTIONS"}}
    documented = {(p, m) for p, item in doc["paths"].items() for m in item}
    assert documented == served
    assert len(served) >= 25


def test_every_operation_documents_auth_and_errors(doc):  # type: ignore[no-untyped-def]
    ops = [(p, m, op) for p, item in doc["paths"].items() for m, op in item.items()]
    for path, method, op in ops:
        assert op["summary"] and op["operationId"], (path, method)
        assert "401" in op["responses"], (path, method)
        for status, answer in op["responses"].items():
            if status.startswith(("4", "5")):
                ref = answer["content"]["application/json"]["schema"]["$ref"]
                assert ref.endswith(("/ErrorOut", "/ValidationErrorOut"))
        if "{" in path:
            names = {p["name"] for p in op["parameters"] if p["in"] == "path"}
            assert names == set(re.findall(r"{(\w+)}", path))
    rules_post = doc["paths"][f"{PREFIX}/rules"]["post"]
    assert rules_post["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/RuleSpec"}
    assert "422" in rules_post["responses"]
    params = {p["name"] for p in doc["paths"][f"{PREFIX}/events"]["get"]["parameters"]}
    assert params == {"source", "status", "outcome", "since", "until", "q", "path", "value",
                      "limit", "offset"}
    schemas = doc["components"]["schemas"]
    assert {"RuleSpec", "SourceSpec", "WebhookStep", "ErrorOut", "ValidationErrorOut",
            "DryRunOut", "EventDetail"} <= set(schemas)


def test_answers_match_their_documented_schemas(api, doc, client, work, sink):  # type: ignore[no-untyped-def]
    jsonschema = pytest.importorskip("jsonschema")

    def check(resp, path, method="get"):  # type: ignore[no-untyped-def]
        answer = doc["paths"][PREFIX + path][method]["responses"][str(resp.status_code)]
        schema = {**answer["content"]["application/json"]["schema"],
                  "components": doc["components"]}
        jsonschema.Draft202012Validator(schema).validate(resp.get_json())

    check(api.post("/api/v1/sources", json={"slug": "shop", "dedup": {"path": "$.body.id"}}),
          "/sources", "post")
    rule = {"name": "r", "source": "shop", "when": {"path": "$.body.ok", "op": "eq",
                                                    "value": True},
            "actions": [{"type": "webhook", "url": f"{sink.url}/x", "json": {"a": 1}}]}
    check(api.post("/api/v1/rules", json=rule), "/rules", "post")
    check(api.post("/api/v1/rules", json={"name": "r"}), "/rules", "post")  # 422
    check(api.get("/api/v1/rules/missing"), "/rules/{name}")  # 404
    event_id = client.post("/hooks/shop", json={"id": "a", "ok": True}).get_json()["event_id"]
    work(until=lambda: api.get("/api/v1/executions?status=succeeded").get_json()["total"])
    api.put("/api/v1/secrets/S", json={"value": "v"})
    [ex] = api.get("/api/v1/executions").get_json()["items"]
    for path in ("/sources", "/sources/shop", "/rules", "/rules/r", "/rules/r/versions",
                 "/secrets", "/events", f"/events/{event_id}", "/executions",
                 f"/executions/{ex['id']}", "/stats"):
        resp = api.get(PREFIX + path)
        assert resp.status_code == 200, path
        template = re.sub(r"/(evt|exe?)_\w+", lambda m: {
            "evt": "/{event_id}"}.get(m.group(1), "/{execution_id}"), path)
        template = {"/sources/shop": "/sources/{slug}", "/rules/r": "/rules/{name}",
                    "/rules/r/versions": "/rules/{name}/versions"}.get(template, template)
        check(resp, template)
    check(api.post("/api/v1/rules/test", json={"rule": rule, "event_id": event_id}),
          "/rules/test", "post")
    check(api.post("/api/v1/rules/backtest", json={"rule": rule}), "/rules/backtest", "post")
    check(api.post(f"/api/v1/events/{event_id}/replay"), "/events/{event_id}/replay", "post")
    check(api.patch("/api/v1/rules/r", json={"enabled": False}), "/rules/{name}", "patch")
