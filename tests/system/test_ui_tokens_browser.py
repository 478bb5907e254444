"""The tokens page in a real browser (issue 14, item 4 and "token revoke takes effect"):
create a token (shown once), use it on the API, revoke it with the confirmation, and the
next call with it is refused."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.slow


def test_create_use_and_revoke_a_token(logged_in, live_server) -> None:  # type: ignore[no-untyped-def]
    page = logged_in
    page.goto(f"{live_server}/tokens")
    page.get_by_label("Name", exact=True).fill("ci-deploy")
    page.get_by_role("button", name="Create token").click()
    token = page.locator("#new-token-value").inner_text().strip()
    assert token.startswith("hw_")
    api = f"{live_server}/api/v1/rules"
    assert httpx.get(api, headers={"Authorization": f"Bearer {token}"}).status_code == 200

    page.goto(f"{live_server}/tokens")  # shown once: a reload does not show it again
    assert page.locator("#new-token-value").count() == 0
    expect(page.locator("tbody")).to_contain_text("ci-deploy")
    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Revoke ci-deploy").click()
    expect(page.get_by_role("button", name="Revoke ci-deploy")).to_have_count(0)
    assert httpx.get(api, headers={"Authorization": f"Bearer {token}"}).status_code == 401
