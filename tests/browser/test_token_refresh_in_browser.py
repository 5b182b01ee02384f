"""Token refresh on the demo page in real Chromium: the page's token function is
called before every attempt, a refusal on reconnect stops the retries and shows,
and the outbox waits for the next good connect."""

from __future__ import annotations

import uuid

from demo_page import texts_handled
from playwright.sync_api import Page, expect

LOAD = 60_000


def test_a_token_refused_on_reconnect_shows_keeps_the_outbox_and_a_fresh_one_flushes_it(
        page: Page, start_server, tmp_path, net_log, console_log):
    db, prefix = f"token-{uuid.uuid4().hex[:8]}", f"tok{uuid.uuid4().hex[:6]}-"
    server = start_server(tmp_path / "s.sqlite3")
    page.goto(f"{server.url}/?db={db}&token=valid")
    expect(page.locator("#status")).to_have_text("connected", timeout=LOAD)
    page.evaluate("window.shotx_token = 'expired'")  # what the page's auth would now hand out
    port = server.port
    server.stop()  # a deploy: the page reconnects, with the token its function returns now
    server = start_server(tmp_path / "s.sqlite3", port=port)
    expect(page.locator("#status")).to_have_text("error: AUTH_FAIL", timeout=30_000)
    for n in range(3):
        page.fill("#message", f"{prefix}{n}")
        page.click("#send")
    expect(page.locator("#queued")).to_have_text("3")
    expect(page.locator("#status")).to_have_text("error: AUTH_FAIL")  # no retry behind our back
    assert texts_handled(server.url, prefix) == []
    page.evaluate("window.shotx_token = 'user-refreshed'")
    page.click("#online")
    expect(page.locator("#status")).to_have_text("connected", timeout=30_000)
    expect(page.locator("#queued")).to_have_text("0", timeout=10_000)
    assert texts_handled(server.url, prefix) == [f"{prefix}{n}" for n in range(3)]
    expect(page.locator("#replied")).to_have_text("3")
