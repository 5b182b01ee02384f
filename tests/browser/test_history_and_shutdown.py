"""The demo page in real Chromium across a deploy: the old server is SIGTERM'd
(the page must notice at once, not after the 45 s ping timeout) and the next one
starts on an empty SQLite file, another history (the page must replay it from
its start, not skip its first messages, and say there was a gap)."""

from __future__ import annotations

import json
import time
import uuid

from demo_page import publish
from playwright.sync_api import Page, expect

LOAD = 60_000


def shown(page: Page) -> list[int]:
    return [int(n) for n in page.locator("#messages li").evaluate_all("items => items.map(i => i.dataset.n)")]


def test_a_deploy_onto_an_empty_store_is_noticed_at_once_and_replayed_from_its_start(
        page: Page, start_server, tmp_path, net_log, console_log):
    room, db = f"deploy-{uuid.uuid4().hex[:8]}", f"deploy-{uuid.uuid4().hex[:8]}"
    old = start_server(tmp_path / "old.sqlite3")
    page.goto(f"{old.url}/?room={room}&db={db}")
    expect(page.locator("#status")).to_have_text("connected", timeout=LOAD)
    for n in range(1, 6):
        publish(old.url, room, n)
    expect(page.locator("#received")).to_have_text("5", timeout=10_000)
    old.process.terminate()  # a deploy: SIGTERM
    started = time.monotonic()
    expect(page.locator("#status")).not_to_have_text("connected", timeout=1_500)
    noticed = time.monotonic() - started
    old.process.wait(5)
    exited = time.monotonic() - started
    assert noticed < 1.5 and exited < 3.0, (noticed, exited)
    new = start_server(tmp_path / "new.sqlite3", port=old.port)
    for n in range(101, 104):  # the new history: offsets 1..3, below the page's offset 5
        publish(new.url, room, n)
    expect(page.locator("#status")).to_have_text("connected", timeout=30_000)
    expect(page.locator("#gaps")).to_have_text("1", timeout=10_000)
    expect(page.locator("#gaps")).to_have_attribute("data-reason", "new_history")
    expect(page.locator("#received")).to_have_text("3", timeout=10_000)
    assert shown(page) == [1, 2, 3, 4, 5, 101, 102, 103]
    state = json.loads(page.evaluate("shotx_debug()"))
    assert state["rooms"][room] == 3 and state["gaps"][0]["since"] == 5 and state["gaps"][0]["head"] == 3
    expect(page.locator("#duplicates")).to_have_text("0")


def test_a_send_one_tab_got_answered_is_not_run_again_when_the_tab_that_made_it_sends_it_after_a_deploy(
        context, start_server, tmp_path, net_log):
    """Tab A queues sends offline; tab B, on the same outbox, flushes them and gets their answers.
    A still holds them (it made them) and sends them when it goes online, after a deploy that
    emptied the server's memory of replies: they must go as resends, answered from the store.
    Found by clicking both tabs' buttons in random orders with deploys in between: 26 and 76
    sends ran twice in two of six runs."""
    prefix, db = f"made-by-a-{uuid.uuid4().hex[:6]}-", f"shared-{uuid.uuid4().hex[:8]}"
    options = ["--print-handled", "--interval", "0"]
    old = start_server(tmp_path / "server.sqlite3", options=options)
    tabs = [context.new_page(), context.new_page()]
    for tab in tabs:
        tab.goto(f"{old.url}/?db={db}")
        expect(tab.locator("#status")).to_have_text("connected", timeout=LOAD)
    a, b = tabs
    a.click("#offline")
    expect(a.locator("#status")).to_have_text("offline")
    a.evaluate("async ([n, prefix]) => { await shotx_send_many(n, prefix); }", [10, prefix])
    b.click("#offline")
    expect(b.locator("#status")).to_have_text("offline")
    b.click("#online")  # B's flush takes the stored outbox: A's ten sends
    expect(b.locator("#replied")).to_have_text("10", timeout=30_000)
    old.stop()  # a deploy: SIGTERM, then the same file
    new = start_server(tmp_path / "server.sqlite3", port=old.port, options=options)
    a.click("#online")
    expect(a.locator("#status")).to_have_text("connected", timeout=30_000)
    expect(a.locator("#queued")).to_have_text("0", timeout=30_000)
    new.stop()
    ran = [d["text"] for server in (old, new) for d in server.handled_until_the_end()
           if isinstance(d, dict) and str(d.get("text", "")).startswith(prefix)]
    assert ran == [f"{prefix}{i}" for i in range(10)]
