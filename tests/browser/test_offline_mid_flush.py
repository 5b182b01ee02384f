"""Defect 1 as a user meets it on the demo page: 300 sends queued offline, a
reload, "Go online", then "Go offline" while the stored records flush, then
"Go online" again. The first flush must end with its connection and give up
the tab's flush lock (a Web Lock), or the second one waits on it for ever and
the outbox sticks at whatever was left.

Each case clicks "Go offline" at another point of the flush, counted in
replies (the #queued counter falls as acks arrive).
"""

from __future__ import annotations

import uuid

import pytest
from demo_page import LOAD, click_when_queued_at_most, outbox_size, page_url, texts_handled
from playwright.sync_api import Page, expect

COUNT = 300


def queue_offline_and_reload(page: Page, base: str, db: str, prefix: str) -> None:
    page.goto(page_url(base, db=db))
    expect(page.locator("#status")).to_have_text("connected", timeout=LOAD)
    page.click("#offline")
    expect(page.locator("#status")).to_have_text("offline")
    page.evaluate("([n, prefix]) => shotx_send_many(n, prefix)", [COUNT, prefix])
    expect(page.locator("#queued")).to_have_text(str(COUNT), timeout=30_000)
    assert outbox_size(page, db) == COUNT
    page.reload()
    expect(page.locator("#status")).to_have_text("offline", timeout=LOAD)
    expect(page.locator("#queued")).to_have_text(str(COUNT))


@pytest.mark.parametrize("share_replied", [0.01, 0.30, 0.70], ids=["at-1%", "at-30%", "at-70%"])
def test_going_offline_in_the_middle_of_a_flush_does_not_stick_the_outbox(
    page: Page, demo_server: str, net_log, console_log, share_replied: float
) -> None:
    db, prefix = f"mid-flush-{uuid.uuid4().hex[:6]}", f"mf{uuid.uuid4().hex[:6]}-"
    queue_offline_and_reload(page, demo_server, db, prefix)

    page.click("#online")
    left = click_when_queued_at_most(page, COUNT - max(1, round(COUNT * share_replied)), "#offline")
    expect(page.locator("#status")).to_have_text("offline")
    stuck_at = int(page.locator("#queued").text_content() or "0")
    assert 0 < stuck_at <= left, "the flush ended before 'Go offline': this case tested nothing"

    page.click("#online")
    expect(page.locator("#status")).to_have_text("connected", timeout=LOAD)
    expect(page.locator("#queued")).to_have_text("0", timeout=30_000)
    assert texts_handled(demo_server, prefix) == [f"{prefix}{i}" for i in range(COUNT)]
    assert outbox_size(page, db) == 0
