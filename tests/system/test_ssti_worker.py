"""The SSTI corpus of tests/integration/test_security.py through one real `hookwise worker`
process: every hostile template fails its step, no file is read or written, and the same
process is still alive to run a benign event."""

from __future__ import annotations

import json

import pytest

from rules.errors import RuleValidationError
from tests.integration.test_security import (
    PWNED,
    SSTI,
    all_finished,
    apply_yaml,
    executions_of,
    steps_of,
)
from tests.system.test_faults import start_worker, stop_worker, wait_until

pytestmark = pytest.mark.slow


def test_ssti_corpus_leaves_a_real_worker_process_alive(rt, env, client, sink, tmp_path):  # type: ignore[no-untyped-def]
    """Every hostile template through one `hookwise worker` process: each fails its step,
    no file is read or written, and the same process then runs a benign event."""
    marker = tmp_path / "pwned"
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text("TOP-SECRET-FILE-CONTENT")
    corpus = [t.replace(PWNED, str(marker)) for t in SSTI] + [
        "{{ cycler.__init__.__globals__.os.popen('cat " + str(secret_file) + "').read() }}",
        "{{ ''.__class__.__mro__[1].__subclasses__()[40]('" + str(secret_file) + "').read() }}",
        "{% include '" + str(secret_file) + "' %}",
    ]
    rules = ["sources: [{slug: s}]", "rules:"]
    for i, t in enumerate(corpus):
        rules.append(
            f"  - {{name: h{i}, source: s, when: {{path: $.body.i, op: eq, value: {i}}}, "
            f"actions: [{{id: a, type: webhook, url: '{sink.url}/h', "
            f"json: {{x: {json.dumps(t)}}}}}]}}"
        )
    rules.append(f"  - {{name: ok, source: s, when: {{path: $.body.i, op: eq, value: -1}}, "
                 f"actions: [{{id: a, type: webhook, url: '{sink.url}/ok'}}]}}")

    accepted: list[int] = []
    for i, line in enumerate(rules[2:-1]):  # apply one by one: a refused one is fine
        try:
            apply_yaml(rt, tmp_path, "\n".join(rules[:2] + [line]), name=f"r{i}.yaml")
            accepted.append(i)
        except RuleValidationError:
            pass
    apply_yaml(rt, tmp_path, "\n".join(rules[:2] + [rules[-1]]), name="ok.yaml")
    assert len(accepted) > len(corpus) // 2

    worker = start_worker(env)
    try:
        for i in accepted:
            assert client.post("/hooks/s", json={"i": i}).status_code == 202
        assert client.post("/hooks/s", json={"i": -1}).status_code == 202
        wait_until(lambda: len(executions_of(rt)) == len(accepted) + 1 and all_finished(rt),
                   90, "every execution to finish")
        assert worker.poll() is None, "the worker process died"
    finally:
        stop_worker(worker)
    statuses = {e.rule_name: e.status for e in executions_of(rt)}
    assert statuses.pop("ok") == "succeeded"
    assert set(statuses.values()) == {"failed"}
    for st in steps_of(rt):
        if st.status == "failed":
            assert (st.error or "").startswith("template error: "), st.error
    assert not marker.exists()
    dumped = json.dumps([(s.rendered, s.output, s.error) for s in steps_of(rt)])
    assert "TOP-SECRET-FILE-CONTENT" not in dumped
    assert [r.path for r in sink.requests] == ["/ok"]
