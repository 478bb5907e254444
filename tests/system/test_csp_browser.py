"""The UI under its Content-Security-Policy in a real browser (Playwright driving
Debian's Chromium): no page, nor the dashboard's htmx refresh, nor the rule builder,
reports a CSP violation (issue 12, item 8)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow

PAGES = ["/", "/rules", "/rules/new", "/rules/wait/edit", "/sources", "/sources/new",
         "/sources/shop", "/events", "/secrets"]

LISTEN = """() => {
  window.__csp = [];
  document.addEventListener("securitypolicyviolation", (e) => {
    window.__csp.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`);
  });
}"""


def test_ui_pages_report_no_csp_violation(logged_in, live_server, client, rt, tmp_path):  # type: ignore[no-untyped-def]
    from engine.store.rule_files import apply_paths

    f = tmp_path / "shop.yaml"
    f.write_text("""
sources: [{slug: shop}]
rules:
  - {name: wait, source: shop, actions: [{id: w, type: delay, seconds: 0}]}
""")
    apply_paths(rt.catalog, [f])
    for n in range(3):  # events, so the dashboard draws its status bars
        client.post("/hooks/shop", json={"n": n})
    page = logged_in
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text) if m.type in ("error", "warning")
            else None)
    page.add_init_script(f"({LISTEN})()")
    seen = []
    for path in PAGES:
        resp = page.goto(f"{live_server}{path}")
        assert resp is not None and "content-security-policy" in resp.headers, path
        seen.append((path, resp.status))
        page.wait_for_load_state("networkidle")
        violations = page.evaluate("window.__csp")
        assert violations == [], (path, violations)
    # the dashboard refreshes itself through htmx; the swapped-in part passes too
    page.goto(f"{live_server}/")
    page.wait_for_timeout(300)
    page.evaluate("htmx.ajax('GET', '/dashboard/live', '#dashboard-live')")
    page.wait_for_load_state("networkidle")
    assert page.evaluate("window.__csp") == []
    widths = page.eval_on_selector_all(".statusbar .seg", "els => els.map(e => e.style.width)")
    assert all(w.endswith("%") for w in widths)
    csp = [m for m in console if "Content Security Policy" in m or "Refused to" in m]
    assert csp == [], csp
    assert all(status == 200 for _, status in seen), seen
