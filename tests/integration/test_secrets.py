"""Secrets at rest: encrypted, rotatable, never readable back through any surface."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from engine.errors import ConfigError
from engine.runtime import Runtime
from engine.settings import Settings
from engine.store.models import Secret


def test_values_are_encrypted_at_rest(rt) -> None:  # type: ignore[no-untyped-def]
    rt.secrets.set("API_TOKEN", "plain-value-123")
    with Session(rt.db) as s:
        row = s.exec(select(Secret)).one()
    assert b"plain-value-123" not in row.value_encrypted
    assert rt.secrets.get("API_TOKEN") == "plain-value-123"


def test_key_rotation(rt, env) -> None:  # type: ignore[no-untyped-def]
    rt.secrets.set("API_TOKEN", "v1")
    new_env = {**env, "HOOKWISE_SECRET_KEY": "a-brand-new-key"}

    no_old = Runtime(Settings.from_env(new_env))
    with pytest.raises(ConfigError, match="cannot be decrypted"):
        no_old.secrets.get("API_TOKEN")
    no_old.close()

    both = Runtime(Settings.from_env({**new_env,
                                      "HOOKWISE_SECRET_KEY_PREVIOUS": env["HOOKWISE_SECRET_KEY"]}))
    assert both.secrets.get("API_TOKEN") == "v1"  # the old key still decrypts
    assert both.secrets.rotate() == 1
    both.close()

    only_new = Runtime(Settings.from_env(new_env))
    assert only_new.secrets.get("API_TOKEN") == "v1"  # re-encrypted with the new key
    only_new.close()


def test_encoded_and_derived_secrets_are_redacted(rt, client, work, sink, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from sqlmodel import select as sel

    from engine.store.models import StepRun
    from engine.store.rule_files import apply_paths

    rt.secrets.set("PW", "p@ss/w=rd")
    f = tmp_path / "r.yaml"
    f.write_text(f"""
sources: [{{slug: s}}]
rules:
  - name: r
    source: s
    actions:
      - id: out
        type: webhook
        url: "{sink.url}/x"
        query: {{pw: "{{{{ secrets.PW | urlencode }}}}"}}
        headers: {{Authorization: "Basic {{{{ ('bot:' ~ secrets.PW) | b64encode }}}}"}}
        json: {{pw64: "{{{{ secrets.PW | b64encode }}}}", pw: "{{{{ secrets.PW }}}}"}}
""")
    apply_paths(rt.catalog, [f])
    client.post("/hooks/s", json={})
    work()
    assert len(sink.wait_for(1)) == 1
    with Session(rt.db) as s:
        step = s.exec(sel(StepRun)).one()
    stored = str(step.rendered)
    assert "p@ss/w=rd" not in stored and "p%40ss%2Fw%3Drd" not in stored
    assert "cEBzcy93PXJk" not in stored  # base64 of the secret
    assert step.rendered["headers"]["Authorization"] == "Basic [redacted]"
