"""``hookwise test`` prints each condition's options, as the UI does (issue 13, item 15):
``ignore_case``, ``match: all`` and ``value_path`` (with what it selected), so a surprising
PASS or FAIL can be read from the output alone."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from cli.main import main

RULE = """\
rules:
  - name: options
    source: shop
    when:
      all:
        - {path: $.body.country, op: in, value: [NO, SE], ignore_case: true}
        - {path: "$.body.tags[*]", op: ne, value: wip, match: all}
        - {path: $.body.n, op: ge, value_path: $.body.floor}
        - {path: $.body.n, op: gt, value_path: "$.body.limits[*]", match: all}
    actions:
      - {id: s, type: state, key: k, set: {x: 1}}
"""


def test_pass_and_fail_lines_show_the_options(tmp_path: Path) -> None:
    rule = tmp_path / "rule.yaml"
    rule.write_text(RULE)
    payload = tmp_path / "p.json"
    payload.write_text(json.dumps({"country": "no", "tags": ["ready", "done"], "n": 7,
                                   "floor": 7, "limits": [5, 10]}))
    res = CliRunner().invoke(main, ["test", str(rule), "--payload", str(payload)],
                             catch_exceptions=False)
    assert res.exit_code == 1, res.output
    lines = [line.strip() for line in res.output.splitlines()]
    assert 'PASS $.body.country in ["NO", "SE"] (ignore_case)   saw ["no"]' in lines, res.output
    assert 'PASS $.body.tags[*] ne "wip" (match all)   saw ["ready", "done"]' in lines
    assert "PASS $.body.n ge $.body.floor   saw [7]; $.body.floor selected [7]" in lines
    assert ("FAIL $.body.n gt $.body.limits[*] (match all)   saw [7]; "
            "$.body.limits[*] selected [5, 10]") in lines
    assert ("reason: failed at `$.body.n gt $.body.limits[*] (match all)`: saw 7; "
            "$.body.limits[*] selected 5, 10") in lines
