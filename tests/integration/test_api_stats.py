"""/api/v1/stats: the dashboard's time series, counts by status and the queue."""

from __future__ import annotations

import pytest

from engine.runtime import Runtime
from tests.servers import free_port


def test_stats_shape(api, client):  # type: ignore[no-untyped-def]
    api.post("/api/v1/sources", json={"slug": "shop"})
    client.post("/hooks/shop", json={"n": 1})
    resp = api.get("/api/v1/stats")
    assert resp.status_code == 200
    data = resp.get_json()
    assert set(data) == {"timeseries", "counts", "queue"}
    ts = data["timeseries"]
    assert set(ts) == {"start", "end", "labels", "events", "failures"}
    assert len(ts["labels"]) == len(ts["events"]) == len(ts["failures"])
    assert sum(ts["events"]) == 1 and sum(ts["failures"]) == 0
    assert data["counts"] == {"events": {"pending": 1}, "executions": {}}
    assert data["queue"] == {"queued": 1, "scheduled": 0}


@pytest.fixture
def no_redis_api(settings, api_token):  # type: ignore[no-untyped-def]
    """The app on a Runtime whose Redis is a closed port."""
    from web import create_app

    rt = Runtime(settings, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    app = create_app(runtime=rt)
    app.config["TESTING"] = True
    yield app.test_client(), {"Authorization": f"Bearer {api_token}"}
    rt.close()


def test_stats_without_redis_answer_a_null_queue(no_redis_api):  # type: ignore[no-untyped-def]
    client, headers = no_redis_api
    resp = client.get("/api/v1/stats", headers=headers)
    assert resp.status_code == 200
    assert resp.get_json()["queue"] is None
    assert resp.get_json()["counts"] == {"events": {}, "executions": {}}
