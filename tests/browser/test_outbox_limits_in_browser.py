"""The outbox's limits in real Chromium: the browser's storage quota surfaces as
OutboxFull with the queue intact, and the page shows whether its store is durable."""

from __future__ import annotations

import uuid

from demo_page import LOAD, debug, outbox_size, page_url, texts_handled
from playwright.sync_api import Page, expect


def test_a_storage_quota_error_is_outbox_full_and_the_queue_stays(page: Page, demo_server, net_log, console_log):
    prefix, db = f"q{uuid.uuid4().hex[:6]}-", f"quota-{uuid.uuid4().hex[:6]}"
    page.goto(page_url(demo_server, db=db))
    expect(page.locator("#status")).to_have_text("connected", timeout=LOAD)
    expect(page.locator("#durable")).to_have_attribute("data-durable", "1")
    page.click("#offline")
    expect(page.locator("#status")).to_have_text("offline")
    for n in range(3):
        page.fill("#message", f"{prefix}{n}")
        page.click("#send")
    expect(page.locator("#queued")).to_have_text("3")
    # A real quota: the origin may keep only a little more than it holds now (Chrome DevTools Protocol).
    cdp = page.context.new_cdp_session(page)
    usage = page.evaluate("navigator.storage.estimate().then((e) => e.usage)")
    cdp.send("Storage.overrideQuotaForOrigin", {"origin": demo_server, "quotaSize": usage + 1024})
    try:
        page.evaluate("(text) => { document.querySelector('#message').value = text; }", f"{prefix}big-" + "x" * 500_000)
        page.click("#send")
        refused = page.locator("#replies li[data-error='OUTBOX_FULL']")
        expect(refused).to_have_count(1, timeout=10_000)
        assert "storage quota" in refused.text_content() and "QuotaExceededError" in refused.text_content()
        expect(page.locator("#queued")).to_have_text("3")
        assert outbox_size(page, db) == 3  # nothing of the refused send was stored
    finally:
        cdp.send("Storage.overrideQuotaForOrigin", {"origin": demo_server})  # back to the default quota
    page.click("#online")
    expect(page.locator("#status")).to_have_text("connected", timeout=LOAD)
    expect(page.locator("#queued")).to_have_text("0", timeout=10_000)
    assert texts_handled(demo_server, prefix) == [f"{prefix}{n}" for n in range(3)]
    assert outbox_size(page, db) == 0
    assert debug(page)["durable"] is True
