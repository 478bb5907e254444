"""Nothing let in: corpora of hostile templates (SSTI), outgoing targets (SSRF) and SQL
values, each carried through the real chain (ingest → worker → step), and secrets that
never show up where they are recorded, answered or logged. (The SSTI corpus through one
`hookwise worker` process: tests/system/test_ssti_worker.py.)"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlmodel import Session, select

from engine import runtime as runtime_mod
from engine.runtime import Runtime
from engine.settings import Settings
from engine.store.db import upgrade
from engine.store.models import Execution, StepRun
from engine.store.rule_files import apply_paths
from engine.work.worker import make_worker
from tests.servers import HttpSink, Reply

# -- helpers ---------------------------------------------------------------------------


def apply_yaml(rt: Runtime, tmp_path: Path, text: str, name: str = "r.yaml") -> None:
    f = tmp_path / name
    f.write_text(text)
    apply_paths(rt.catalog, [f])


def steps_of(rt: Runtime) -> list[StepRun]:
    with Session(rt.db) as s:
        return list(s.exec(select(StepRun).order_by(StepRun.id)))  # type: ignore[arg-type]


def executions_of(rt: Runtime) -> list[Execution]:
    with Session(rt.db) as s:
        return list(s.exec(select(Execution)))


def run_worker(rt: Runtime, until=None, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        make_worker(rt).work(burst=True, with_scheduler=True, logging_level="WARNING")
        if until is None or until():
            return
        assert time.monotonic() < deadline, "worker did not reach the expected state in time"
        time.sleep(0.1)


def all_finished(rt: Runtime) -> bool:
    ex = executions_of(rt)
    return bool(ex) and all(e.status in ("succeeded", "failed") for e in ex)


# -- SSTI ------------------------------------------------------------------------------

PWNED = "PWNED_MARKER_FILE"  # replaced by a path in tmp: a template that ran a command makes it

SSTI = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ ''.__class__.__mro__[1].__subclasses__()[0] }}",
    "{{ cycler.__init__.__globals__.os.popen('touch PWNED_MARKER_FILE').read() }}",
    "{{ joiner.__init__.__globals__.os.popen('touch PWNED_MARKER_FILE').read() }}",
    "{{ namespace.__init__.__globals__.os.popen('touch PWNED_MARKER_FILE').read() }}",
    "{{ self.__init__.__globals__ }}",
    "{{ self._TemplateReference__context }}",
    "{{ request }}",
    "{{ config }}",
    "{{ config.items() }}",
    "{{ lipsum.__globals__ }}",
    "{{ lipsum.__globals__['os'].popen('touch PWNED_MARKER_FILE').read() }}",
    "{% for x in ().__class__.__base__.__subclasses__() %}"
    "{% if 'warning' in x.__name__ %}"
    "{{ x()._module.__builtins__['__import__']('os').popen('touch PWNED_MARKER_FILE') }}"
    "{% endif %}{% endfor %}",
    "{{ body.__dict__ }}",
    "{{ body.__class__ }}",
    "{{ body|attr('__class__') }}",
    "{{ (body|attr('__class__')).mro() }}",
    "{{ body.__class__.mro()[1].__subclasses__() }}",
    "{{ ''.__class__.mro() }}",
    "{{ state.__self__ }}",
    "{{ state.__globals__ }}",
    "{{ secrets._store }}",
    "{{ secrets.__class__.__init__.__globals__ }}",
    "{{ steps.__class__ }}",
    "{{ '{0.__class__.__mro__}'.format(body) }}",
    "{{ '{0.__init__.__globals__}'.format(cycler) }}",
    "{{ '%s'|format(''.__class__.__mro__) }}",
    "{{ '%s'|format(cycler.__init__.__globals__) }}",
    "{{ '%99999999s'|format('x') }}",
    "{{ '{:99999999}'.format('x') }}",
    "{{ 'a' * 10**9 }}",
    "{{ [1] * 10**9 }}",
    "{{ 10 ** (10 ** 6) }}",
    "{{ (10 ** 100000) | string }}",
    "{{ range(10**9) | list }}",
    "{{ range(10**9) | length }}",
    "{% for i in range(10**9) %}x{% endfor %}",
    "{{ 'x'|center(10**9) }}",
    "{{ 'x'|indent(10**9) }}",
    "{{ body.keys.__self__ }}",
    "{{ [].append(1) }}",
    "{{ {}.update(a=1) }}",
    "{{ {}.__setitem__('a', 1) }}",
    "{{ dict.__base__.__subclasses__() }}",
    "{{ undefined_name.x }}",
    "{{ ''.join.__self__.__class__ }}",
    "{{ (lambda: 1) }}",
    "{% import 'os' as os %}{{ os }}",
    "{% include '/etc/passwd' %}",
    "{% extends '/etc/passwd' %}",
    "{{ get_flashed_messages.__globals__ }}",
    "{{ url_for.__globals__ }}",
]

SSTI_RULE = """
sources: [{{slug: s}}]
rules:
  - name: hostile
    source: s
    when: {{path: $.body.kind, op: eq, value: hostile}}
    actions:
      - id: send
        type: webhook
        url: "{url}/hostile"
        json: {{x: {template}}}
  - name: benign
    source: s
    when: {{path: $.body.kind, op: eq, value: benign}}
    actions:
      - id: send
        type: webhook
        url: "{url}/benign"
        json: {{n: "{{{{ body.n }}}}"}}
"""


def ssti_rule(template: str, url: str, marker: Path) -> str:
    return SSTI_RULE.format(url=url, template=json.dumps(template.replace(PWNED, str(marker))))


@pytest.mark.parametrize("template", SSTI, ids=range(len(SSTI)))
def test_ssti_template_fails_its_step_and_nothing_escapes(  # type: ignore[no-untyped-def]
    rt, client, work, sink, tmp_path, template
):
    from rules.errors import RuleValidationError

    marker = tmp_path / "pwned"
    try:
        apply_yaml(rt, tmp_path, ssti_rule(template, sink.url, marker))
    except RuleValidationError as exc:  # refused when saved: as good as failing at run
        assert "template" in str(exc).lower(), exc
        return
    assert client.post("/hooks/s", json={"kind": "hostile"}).status_code == 202
    assert client.post("/hooks/s", json={"kind": "benign", "n": 7}).status_code == 202
    work(until=lambda: len(executions_of(rt)) == 2 and all_finished(rt), timeout=20)

    by_rule = {e.rule_name: e for e in executions_of(rt)}
    assert by_rule["hostile"].status == "failed"
    assert by_rule["benign"].status == "succeeded"  # the worker carried on
    hostile = [st for st in steps_of(rt) if st.execution_id == by_rule["hostile"].id]
    assert [st.status for st in hostile] == ["failed"]
    assert (hostile[0].error or "").startswith("template error: "), hostile[0].error
    assert hostile[0].attempts == 1  # permanent: never retried
    assert not marker.exists()  # no command ran
    assert [r.path for r in sink.requests] == ["/benign"]  # nothing was sent
    assert sink.requests[0].json() == {"n": 7}


# -- SSRF ------------------------------------------------------------------------------


@pytest.fixture
def strict(env: dict) -> Iterator[Runtime]:
    """A runtime whose egress allow list is empty (production's default)."""
    settings = Settings.from_env({**env, "HOOKWISE_EGRESS_ALLOW": ""})
    upgrade(settings)
    rt = Runtime(settings)
    runtime_mod.install(rt)
    yield rt
    runtime_mod.install(None)
    rt.close()


def _ssrf_targets() -> list[tuple[str, str]]:
    # (URL template with {port}, the reason's key word)
    return [
        ("http://127.0.0.1:{port}/", "loopback"),
        ("http://127.0.0.2:{port}/", "loopback"),
        ("http://127.1:{port}/", "loopback"),
        ("http://[::1]:{port}/", "loopback"),
        ("http://[::ffff:7f00:1]:{port}/", "loopback"),
        ("http://[::ffff:127.0.0.1]:{port}/", "loopback"),
        ("http://0x7f000001:{port}/", "loopback"),
        ("http://2130706433:{port}/", "loopback"),
        ("http://017700000001:{port}/", "loopback"),
        ("http://0.0.0.0:{port}/", "unspecified"),
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ("http://[fd00:ec2::254]/latest/meta-data/", "metadata"),
        ("http://100.64.0.1/", "carrier-grade NAT"),
        ("http://10.0.0.1:{port}/", "private"),
        ("http://192.168.0.1:{port}/", "private"),
        ("http://[fd00::1]:{port}/", "unique-local"),
        ("http://[64:ff9b::7f00:1]:{port}/", "loopback"),
        ("http://localhost:{port}/", "loopback"),
        ("http://LOCALHOST:{port}/", "loopback"),
        ("http://user:pw@127.0.0.1:{port}/", "loopback"),
    ]


SSRF_RULE = """
sources: [{slug: s}]
rules:
  - name: out
    source: s
    actions:
      - id: call
        type: webhook
        url: "{{ body.url }}"
        json: {hello: world}
        retry: {max_attempts: 3, backoff: fixed, initial_s: 0.1}
"""


@pytest.mark.parametrize(("target", "why"), _ssrf_targets(), ids=[t for t, _ in _ssrf_targets()])
def test_ssrf_target_is_a_permanent_step_failure(strict, sink, tmp_path, target, why):  # type: ignore[no-untyped-def]
    from web import create_app

    apply_yaml(strict, tmp_path, SSRF_RULE)
    client = create_app(runtime=strict).test_client()
    url = target.format(port=sink.port)
    assert client.post("/hooks/s", json={"url": url}).status_code == 202
    run_worker(strict, until=lambda: all_finished(strict))
    [ex] = executions_of(strict)
    [st] = steps_of(strict)
    assert ex.status == "failed" and st.status == "failed"
    assert st.attempts == 1, "an egress refusal must not be retried"
    assert st.error and st.error.startswith("egress refused: "), st.error
    assert why in st.error and "HOOKWISE_EGRESS_ALLOW" in st.error
    assert sink.requests == []


def test_template_built_rebinding_name_is_refused_at_connect(strict, sink, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    """A host name that looks public but resolves to loopback when the step runs."""
    import socket

    real = socket.getaddrinfo

    def fake(host, *a, **kw):  # type: ignore[no-untyped-def]
        return real("127.0.0.1" if host == "hooks.example.com" else host, *a, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    from web import create_app

    apply_yaml(strict, tmp_path, SSRF_RULE)
    client = create_app(runtime=strict).test_client()
    client.post("/hooks/s", json={"url": f"http://hooks.example.com:{sink.port}/"})
    run_worker(strict, until=lambda: all_finished(strict))
    [st] = steps_of(strict)
    assert st.status == "failed" and st.attempts == 1
    assert "hooks.example.com resolves to 127.0.0.1" in (st.error or "")
    assert sink.requests == []


def test_redirect_to_loopback_is_never_followed(env, sink, tmp_path):  # type: ignore[no-untyped-def]
    """The first hop is allowed (it stands for a public host); it answers 302 to a
    loopback service. The step fails permanently and the loopback service gets nothing."""
    from web import create_app

    settings = Settings.from_env({**env, "HOOKWISE_EGRESS_ALLOW": "127.0.0.1/32"})
    upgrade(settings)
    rt = Runtime(settings)
    runtime_mod.install(rt)
    try:
        with HttpSink() as internal:
            target = f"http://127.0.0.1:{internal.port}/admin"
            sink.respond("/go", Reply(status=302, headers={"Location": target}))
            apply_yaml(rt, tmp_path, SSRF_RULE)
            client = create_app(runtime=rt).test_client()
            client.post("/hooks/s", json={"url": f"{sink.url}/go"})
            run_worker(rt, until=lambda: all_finished(rt))
            [st] = steps_of(rt)
            assert st.status == "failed" and st.attempts == 1
            assert st.error == f"redirect not followed: 302 to {target}"
            assert [r.path for r in sink.requests] == ["/go"]
            assert internal.requests == []
    finally:
        runtime_mod.install(None)
        rt.close()


# -- SQL injection ---------------------------------------------------------------------

INJECTIONS = [
    "x'); DROP TABLE payments;--",
    "1 OR 1=1",
    "1' OR '1'='1",
    '"; DELETE FROM events; --',
    "'; DELETE FROM events WHERE '1'='1",
    "Robert'); DROP TABLE payments; --",
    "’ OR ‘1’=‘1",  # unicode quotes
    "＇; DROP TABLE payments;--",  # fullwidth apostrophe
    "ʼ; DROP TABLE events; --",  # modifier letter apostrophe
    "\\'; DROP TABLE payments; --",
    "$$; DROP TABLE payments; $$",
    "1; SELECT pg_sleep(10); --",
    "%s%s%s %(x)s",
    ":note :id ?",
    "/* */ UNION SELECT * FROM secrets --",
]

DB_RULE = """
sources: [{{slug: s}}]
rules:
  - name: save
    source: s
    actions:
      - id: write
        type: db_write
        table: {table}
        mode: {mode}
        key: [payment_id]
        values: {values}
"""


@pytest.fixture
def payments(rt) -> Iterator[sa.Table]:  # type: ignore[no-untyped-def]
    meta = sa.MetaData()
    table = sa.Table(
        "payments", meta,
        sa.Column("payment_id", sa.String(200), primary_key=True),
        sa.Column("amount", sa.Integer),
        sa.Column("note", sa.Text),
    )
    meta.create_all(rt.db)
    yield table
    table.drop(rt.db, checkfirst=True)


class Statements:
    """Every SQL statement (text) an engine executes while recording."""

    def __init__(self, engine: sa.Engine):
        self.engine = engine
        self.seen: list[str] = []
        sa_event.listen(engine, "before_cursor_execute", self._on)

    def _on(self, conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        self.seen.append(statement)

    def close(self) -> None:
        sa_event.remove(self.engine, "before_cursor_execute", self._on)

    def writes_to(self, table: str) -> list[str]:
        return [s for s in self.seen
                if s.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE", "DROP"))
                and table in s]


def _counts(rt: Runtime) -> tuple[int, int]:
    with rt.db.connect() as c:
        return (c.execute(sa.text("SELECT count(*) FROM events")).scalar_one(),
                c.execute(sa.text("SELECT count(*) FROM payments")).scalar_one())


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
@pytest.mark.parametrize("mode", ["insert", "upsert"])
def test_sql_injection_values_are_stored_verbatim(rt, client, work, payments, tmp_path, mode):  # type: ignore[no-untyped-def]
    values = '{payment_id: "{{ body.id }}", note: "{{ body.note }}", amount: "{{ body.n }}"}'
    apply_yaml(rt, tmp_path, DB_RULE.format(table="payments", mode=mode, values=values))
    for i, bad in enumerate(INJECTIONS):
        resp = client.post("/hooks/s", json={"id": bad, "note": bad, "n": i})
        assert resp.status_code == 202
    work(until=lambda: len(executions_of(rt)) == len(INJECTIONS) and all_finished(rt),
         timeout=30)
    assert {e.status for e in executions_of(rt)} == {"succeeded"}
    with rt.db.connect() as c:
        rows = c.execute(sa.select(payments).order_by(payments.c.amount)).all()
    assert [(r.payment_id, r.note, r.amount) for r in rows] == [
        (bad, bad, i) for i, bad in enumerate(INJECTIONS)
    ]
    assert _counts(rt) == (len(INJECTIONS), len(INJECTIONS))  # events and payments intact


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_sql_injection_in_a_numeric_column_is_refused_not_run(rt, client, work, payments, tmp_path):  # type: ignore[no-untyped-def]
    values = '{payment_id: "p1", amount: "{{ body.n }}"}'
    apply_yaml(rt, tmp_path, DB_RULE.format(table="payments", mode="insert", values=values))
    client.post("/hooks/s", json={"n": "1 OR 1=1"})
    work(until=lambda: all_finished(rt))
    [st] = steps_of(rt)
    assert st.status == "failed" and "column amount: cannot store '1 OR 1=1'" in (st.error or "")
    assert _counts(rt) == (1, 0)


BAD_TABLES = [
    ("payments; DROP TABLE events", "does not exist"),
    ('"payments"', "does not exist"),
    ("payments--", "does not exist"),
    ("payments WHERE 1=1", "does not exist"),
    ('x"; DROP TABLE payments; --.payments', None),  # an unknown schema: refused either way
    ("events; DROP TABLE payments", "does not exist"),
    ("{{ body.table }}", "does not exist"),  # a name chosen by the sender
    ("payments_nope", "does not exist"),  # well-formed but not there: refused at run
]


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
@pytest.mark.parametrize(("table", "why"), BAD_TABLES, ids=[t for t, _ in BAD_TABLES])
def test_unreflected_table_names_are_refused_before_any_write(  # type: ignore[no-untyped-def]
    rt, client, work, payments, tmp_path, table, why
):
    from rules.errors import RuleValidationError

    values = '{payment_id: "p1", amount: 1}'
    try:
        apply_yaml(rt, tmp_path, DB_RULE.format(table=json.dumps(table), mode="insert",
                                                values=values))
    except RuleValidationError as exc:  # refused when saved: no SQL at all
        assert "table" in str(exc), exc
        assert _counts(rt) == (0, 0)
        return
    recorder = Statements(rt.db)
    try:
        client.post("/hooks/s", json={"table": "payments; DROP TABLE events"})
        work(until=lambda: all_finished(rt))
    finally:
        recorder.close()
    [st] = steps_of(rt)
    assert st.status == "failed" and st.attempts == 1
    if why:
        assert why in (st.error or ""), st.error
    assert recorder.writes_to("payments") == []
    assert not [s for s in recorder.seen if s.lstrip().upper().startswith("DROP")]
    assert _counts(rt) == (1, 0)


UNKNOWN_SCHEMA_RULE = """
sources: [{slug: s}]
rules:
  - name: save
    source: s
    actions:
      - id: write
        type: db_write
        table: nope.payments
        values: {payment_id: p1, amount: 1}
        retry: {max_attempts: 3, backoff: fixed, initial_s: 0.1}
"""


@pytest.mark.parametrize("database_url", [
    "sqlite",
    "postgresql",
], indirect=True)
def test_unknown_schema_is_a_permanent_refusal(rt, client, work, payments, tmp_path):  # type: ignore[no-untyped-def]
    apply_yaml(rt, tmp_path, UNKNOWN_SCHEMA_RULE)
    client.post("/hooks/s", json={})
    work(until=lambda: all_finished(rt), timeout=15)
    [st] = steps_of(rt)
    assert st.status == "failed" and st.attempts == 1, (st.attempts, st.error)
    assert "does not exist" in (st.error or ""), st.error
    assert _counts(rt) == (1, 0)


BAD_COLUMNS = [
    '{payment_id: "p1", "amount; DROP TABLE payments": 1}',
    '{payment_id: "p1", "\\"amount\\"": 1}',
    '{payment_id: "p1", "note) VALUES (1); DROP TABLE events; --": "x"}',
    '{payment_id: "p1", "nope": 1}',
]


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
@pytest.mark.parametrize("values", BAD_COLUMNS, ids=range(len(BAD_COLUMNS)))
def test_unknown_columns_are_refused_before_any_write(rt, client, work, payments, tmp_path, values):  # type: ignore[no-untyped-def]
    from rules.errors import RuleValidationError

    try:
        apply_yaml(rt, tmp_path, DB_RULE.format(table="payments", mode="upsert",
                                                values=values))
    except RuleValidationError as exc:  # refused when saved: no SQL at all
        assert "column name" in str(exc), exc
        assert _counts(rt) == (0, 0)
        return
    recorder = Statements(rt.db)
    try:
        client.post("/hooks/s", json={})
        work(until=lambda: all_finished(rt))
    finally:
        recorder.close()
    [st] = steps_of(rt)
    assert st.status == "failed" and "unknown column(s)" in (st.error or ""), st.error
    assert recorder.writes_to("payments") == []
    assert _counts(rt) == (1, 0)


# -- secrets ---------------------------------------------------------------------------

SECRET = "sk_live_Zq81-very-secret-value"

SECRET_RULE = """
sources: [{{slug: s}}]
rules:
  - name: leaky
    source: s
    actions:
      - id: call
        type: webhook
        url: "{url}{{{{ body.path }}}}?key={{{{ secrets.API_KEY }}}}&n={{{{ body.n }}}}"
        headers:
          Authorization: "Bearer {{{{ secrets.API_KEY }}}}"
          X-Echo: "{{{{ secrets.API_KEY }}}}"
        json: {{token: "{{{{ secrets.API_KEY }}}}", text: "key is {{{{ secrets.API_KEY }}}}"}}
        retry: {{max_attempts: 2, backoff: fixed, initial_s: 0.1}}
"""


def _run_leaky_rule(rt, client, work, sink, tmp_path) -> list[str]:  # type: ignore[no-untyped-def]
    """Four events through a rule that puts a secret in the URL query, a header and the
    JSON body, against a target that echoes everything (200, 400, 503 twice, 302)."""
    rt.secrets.set("API_KEY", SECRET)
    apply_yaml(rt, tmp_path, SECRET_RULE.format(url=sink.url))

    def echo(req):  # type: ignore[no-untyped-def]
        status = {"/ok": 200, "/bad": 400, "/down": 503, "/moved": 302}[req.path]
        headers = {"X-Seen": req.headers.get("authorization", ""),
                   "Location": f"http://elsewhere.example/?k={req.query.get('key')}"}
        return Reply(status=status, headers=headers,
                     json={"seen": req.raw_path, "auth": req.headers.get("authorization"),
                           "body": req.body.decode()})

    sink.handler = echo
    ids = []
    for n, path in enumerate(["/ok", "/bad", "/down", "/moved"]):
        resp = client.post("/hooks/s", json={"path": path, "n": n})
        assert resp.status_code == 202
        ids.append(resp.get_json()["event_id"])
    work(until=lambda: len(executions_of(rt)) == 4 and all_finished(rt), timeout=20)
    # the target did get the secret: it was really used
    assert sum(SECRET in r.raw_path for r in sink.requests) == 5  # /down twice
    assert all(r.headers["authorization"] == f"Bearer {SECRET}" for r in sink.requests)
    return ids


def test_secret_values_never_appear_in_records_errors_or_api_answers(  # type: ignore[no-untyped-def]
    rt, client, api, work, sink, tmp_path
):
    ids = _run_leaky_rule(rt, client, work, sink, tmp_path)
    statuses = sorted(e.status for e in executions_of(rt))
    assert statuses == ["failed", "failed", "failed", "succeeded"]
    stored = json.dumps([[s.rendered, s.output, s.error] for s in steps_of(rt)]
                        + [[e.error for e in executions_of(rt)]], default=str)
    assert "[redacted]" in stored
    assert SECRET not in stored

    answers = []
    for event_id in ids:
        r = api.get(f"/api/v1/events/{event_id}")
        assert r.status_code == 200
        answers.append(r.get_data(as_text=True))
        for ex in r.get_json()["executions"]:
            rx = api.get(f"/api/v1/executions/{ex['id']}")
            assert rx.status_code == 200
            answers.append(rx.get_data(as_text=True))
    answers.append(api.get("/api/v1/executions").get_data(as_text=True))
    answers.append(api.get("/api/v1/events").get_data(as_text=True))
    answers.append(api.get("/api/v1/secrets").get_data(as_text=True))
    for text in answers:
        assert SECRET not in text
    assert "[redacted]" in "".join(answers)


def test_secret_values_never_appear_in_logs(rt, client, work, sink, tmp_path, caplog):  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO)
    _run_leaky_rule(rt, client, work, sink, tmp_path)
    leaked = [f"{r.name}: {r.getMessage()}" for r in caplog.records if SECRET in r.getMessage()]
    assert leaked == [], leaked
