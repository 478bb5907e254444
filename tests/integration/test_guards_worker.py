"""Guards, through a real worker: a template that would loop forever fails its own step on
its CPU-time budget instead of stalling the worker. (The pure guards: tests/unit/test_guards.py.)"""

from __future__ import annotations

import time


def test_a_template_that_loops_forever_fails_its_step_not_the_worker(rt, client, work, tmp_path):  # type: ignore[no-untyped-def]
    from sqlmodel import Session, select

    from engine.store.models import Execution, StepRun
    from engine.store.rule_files import apply_paths

    f = tmp_path / "r.yaml"
    f.write_text("""
sources: [{slug: s}]
rules:
  - name: slow
    source: s
    actions:
      - id: spin
        type: state
        key: "k"
        set:
          x: "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}"
""")
    apply_paths(rt.catalog, [f])
    client.post("/hooks/s", json={})
    t0 = time.perf_counter()
    work()
    assert time.perf_counter() - t0 < 15
    with Session(rt.db) as s:
        step = s.exec(select(StepRun)).one()
        assert s.exec(select(Execution)).one().status == "failed"
    assert step.status == "failed" and "CPU time" in (step.error or "")
