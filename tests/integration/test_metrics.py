"""GET /metrics: Prometheus text, behind a token like every non-public route."""

from __future__ import annotations

from engine.store.rule_files import apply_paths


def test_metrics_count_events_executions_and_queue(rt, client, api, work, sink, tmp_path):  # type: ignore[no-untyped-def]
    assert client.get("/metrics").status_code == 401
    f = tmp_path / "r.yaml"
    f.write_text(f"""
sources: [{{slug: m}}]
rules:
  - name: fwd
    source: m
    actions: [{{id: out, type: webhook, url: "{sink.url}/x"}}]
""")
    apply_paths(rt.catalog, [f])
    for _ in range(2):
        client.post("/hooks/m", json={})
    before = api.get("/metrics").get_data(as_text=True)
    assert 'hookwise_queue_jobs{state="inbox"} 2.0' in before
    assert 'hookwise_events{source="m",status="pending"} 2.0' in before
    work()
    text = api.get("/metrics").get_data(as_text=True)
    assert 'hookwise_events{source="m",status="processed"} 2.0' in text
    assert 'hookwise_executions{rule="fwd",status="succeeded"} 2.0' in text
    assert 'hookwise_steps{status="succeeded",type="webhook"} 2.0' in text
    assert "hookwise_redis_up 1.0" in text
