"""Rule files are YAML 1.2 core everywhere (issue 13, item 10), and exports read back exactly.

``load_yaml`` (``hookwise apply``, ``hookwise test``, the import page) resolves plain scalars
with the YAML 1.2 core schema — ``no`` and ``on`` are strings, ``12:30`` and ``01234`` stay
strings — and ``dump_yaml`` (``hookwise export``) quotes every string that a YAML 1.1 reader
would read as something else, so the export is exact for both.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from cli.main import main
from rules.validation import dump_yaml, load_yaml

SCALARS: list[tuple[str, Any]] = [
    # plain scalar as written, what it means in a rule file
    ("us", "us"),
    ("no", "no"),
    ("No", "No"),
    ("NO", "NO"),
    ("yes", "yes"),
    ("on", "on"),
    ("off", "off"),
    ("y", "y"),
    ("n", "n"),
    ("12:30", "12:30"),
    ("1:20:30", "1:20:30"),
    ("01234", "01234"),
    ("007", "007"),
    ("007.5", "007.5"),
    ("1_000", "1_000"),
    ("2026-01-01", "2026-01-01"),
    ("2026-01-01T10:00:00Z", "2026-01-01T10:00:00Z"),
    ("0b101", "0b101"),
    ("<<", "<<"),
    ("=", "="),
    ("true", True),
    ("True", True),
    ("TRUE", True),
    ("false", False),
    ("FALSE", False),
    ("null", None),
    ("~", None),
    ("NULL", None),
    ("0", 0),
    ("-0", 0),
    ("1234", 1234),
    ("+12", 12),
    ("-12", -12),
    ("0o17", 15),
    ("0x1F", 31),
    ("1e3", 1000.0),
    ("1.5", 1.5),
    ("0.5", 0.5),
    (".5", 0.5),
    ("1.", 1.0),
    ("-1.5e-3", -0.0015),
    (".inf", math.inf),
    ("-.inf", -math.inf),
]


@pytest.mark.parametrize(("text", "meaning"), SCALARS, ids=[t for t, _ in SCALARS])
def test_plain_scalars_read_as_yaml_12_core(text: str, meaning: Any) -> None:
    value = load_yaml(f"v: {text}\n")["v"]
    assert value == meaning and type(value) is type(meaning)


def test_nan_is_a_float() -> None:
    assert math.isnan(load_yaml("v: .nan\n")["v"])


def test_the_issue_examples() -> None:
    doc = load_yaml("value: [us, no, se]\nat: 12:30\nzip: 01234\nflag: on\n")
    assert doc == {"value": ["us", "no", "se"], "at": "12:30", "zip": "01234", "flag": "on"}


def test_merge_keys_are_plain_keys() -> None:
    doc = load_yaml("base: &b {x: 1}\nother:\n  <<: *b\n  y: 2\n")
    assert doc["other"] == {"<<": {"x": 1}, "y": 2}


@pytest.mark.parametrize("text", ["us", "no", "on", "12:30", "01234", "1_000", "2026-01-01",
                                  "1e3", "y", "N", "true", "null", "~", "0o17", ".inf", "<<",
                                  "", " x", "a: b", "- x", "#x"])
def test_export_quotes_what_any_reader_would_misread(text: str) -> None:
    dumped = dump_yaml({"v": text, text: "key"})
    assert load_yaml(dumped) == {"v": text, text: "key"}
    assert yaml.safe_load(dumped) == {"v": text, text: "key"}  # a YAML 1.1 reader agrees


@pytest.mark.parametrize("value", [0, -7, 1234, 10**30, 1.5, 1e20, -0.25, True, False, None,
                                   math.inf, -math.inf, [], {}, ["no", 1, "01234"]])
def test_export_of_other_values_is_exact(value: Any) -> None:
    dumped = dump_yaml({"v": value})
    assert load_yaml(dumped) == {"v": value}
    assert yaml.safe_load(dumped) == {"v": value}


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(_json)
def test_export_round_trip_is_exact(value: Any) -> None:
    dumped = dump_yaml({"v": value})
    assert load_yaml(dumped) == {"v": value}
    assert yaml.safe_load(dumped) == {"v": value}


# --- through the command line: test, apply, export, apply again ---------------------------

RULE_FILE = """\
sources:
  - slug: shop
    verify: {scheme: none}
rules:
  - name: nordics
    source: shop
    when:
      all:
        - {path: $.body.country, op: in, value: [us, no, se]}
        - {path: $.body.zip, op: eq, value: 01234}
        - {path: $.body.slot, op: eq, value: 12:30}
        - {path: $.body.flag, op: eq, value: on}
    actions:
      - id: remember
        type: state
        key: "c-{{ body.country }}"
        set: {seen: yes, at: 12:30}
"""


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    for key in ("HOOKWISE_DATABASE_URL", "HOOKWISE_REDIS_URL", "HOOKWISE_SECRET_KEY"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HOOKWISE_DATA_DIR", str(tmp_path / "data"))
    runner = CliRunner()

    def run(*args: str):  # type: ignore[no-untyped-def]
        return runner.invoke(main, list(args), catch_exceptions=False)

    return run


def test_hookwise_test_reads_no_as_norway(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rule = tmp_path / "rule.yaml"
    rule.write_text(RULE_FILE)
    payload = tmp_path / "p.json"
    payload.write_text(json.dumps({"country": "no", "zip": "01234", "slot": "12:30",
                                   "flag": "on"}))
    res = cli("test", str(rule), "--payload", str(payload))
    assert res.exit_code == 0, res.output
    assert "FAIL" not in res.output


def test_apply_export_apply_is_exact(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rule = tmp_path / "rule.yaml"
    rule.write_text(RULE_FILE)
    assert cli("apply", str(rule)).exit_code == 0
    exported = cli("export").output
    assert "- 'no'" in exported and "'12:30'" in exported and "'01234'" in exported
    doc = load_yaml(exported)
    [spec] = doc["rules"]
    assert spec["when"]["all"][0]["value"] == ["us", "no", "se"]
    assert spec["actions"][0]["set"] == {"seen": "yes", "at": "12:30"}
    assert yaml.safe_load(exported) == doc  # a YAML 1.1 reader reads the export the same
    out = tmp_path / "out.yaml"
    out.write_text(exported)
    again = cli("apply", str(out))
    assert again.exit_code == 0 and "0 changed" in again.output, again.output


# --- the rule builder reads YAML the same way ----------------------------------------------

ROOT = Path(__file__).resolve().parents[2]
NODE = shutil.which("node") or shutil.which("nodejs")
_JS = """
global.window = {jsyaml: require(process.argv[1])};
const src = require("fs").readFileSync(process.argv[2], "utf8");
const start = src.indexOf("const YAML_SCHEMA"), end = src.indexOf("function loadYaml");
if (start < 0 || end < start) throw new Error("YAML_SCHEMA not found in builder.js");
const schema = eval("(" + src.slice(start, end).trim()
  .replace(/^const YAML_SCHEMA = /, "").replace(/;$/, "") + ")");
const texts = JSON.parse(require("fs").readFileSync(0, "utf8"));
const enc = (v) => typeof v === "number" && !isFinite(v) ? {num: String(v)} : v;
console.log(JSON.stringify(texts.map((t) => enc(window.jsyaml.load("v: " + t, {schema}).v))));
"""


@pytest.mark.skipif(NODE is None, reason="needs node to run the builder's js-yaml")
def test_the_builder_reads_scalars_like_the_server() -> None:
    texts = [t for t, _ in SCALARS] + [".nan"]
    out = subprocess.run(
        [NODE, "-e", _JS, str(ROOT / "web/static/vendor/js-yaml.min.js"),
         str(ROOT / "web/static/builder.js")],
        input=json.dumps(texts), capture_output=True, text=True, timeout=30, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    seen = json.loads(out.stdout)
    for text, js in zip(texts, seen, strict=True):
        py = load_yaml(f"v: {text}\n")["v"]
        if isinstance(py, float) and not math.isfinite(py):
            assert js == {"num": {"inf": "Infinity", "-inf": "-Infinity"}.get(str(py), "NaN")}, text
        else:
            assert js == py and isinstance(js, bool) == isinstance(py, bool), text
            assert isinstance(js, str) == isinstance(py, str), text
