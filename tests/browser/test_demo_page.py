"""The PyScript demo page in real Chromium against a real server: loads from
our origin only, connects, and keeps every send and room message across
offline periods, reloads and closed tabs."""

from __future__ import annotations

import hashlib
import os
import uuid

from demo_page import (LOAD, debug, handled, outbox_size, page_url, post_file, publish, send_offline_by_hand,
                       shown_offset, texts_handled, wait_for_stored_offset)
from playwright.sync_api import Page, expect


def test_page_loads_from_our_origin_only_and_connects(page: Page, demo_server, net_log, console_log):
    page.goto(page_url(demo_server, room=f"r-{uuid.uuid4().hex[:8]}"))
    expect(page.locator("#status")).to_have_text("connected", timeout=LOAD)
    assert net_log.offsite == []
    assert any(url.startswith("WS ") and "/shotx/" in url for url in net_log.seen)
    assert not console_log.errors, console_log.errors
    # Without an icon of its own the page's tab asks for /favicon.ico a moment after load (not
    # routed, so net_log does not see it): its 404 was a console error a visitor saw.
    assert page.locator('link[rel="icon"]').count() == 1


def test_bad_token_shows_auth_fail(page: Page, demo_server, net_log):
    page.goto(page_url(demo_server, token="wrong"))
    expect(page.locator("#status")).to_have_text("error: AUTH_FAIL", timeout=LOAD)


def test_offline_sends_survive_a_reload_and_run_once_in_order(page: Page, demo_server, net_log, console_log):
    prefix = f"t{uuid.uuid4().hex[:8]}-"
    page.goto(page_url(demo_server, db="reload-test"))
    expect(page.locator("#status")).to_have_text("connected", timeout=LOAD)
    send_offline_by_hand(page, prefix, 5)
    assert outbox_size(page, "reload-test") == 5
    page.reload()
    expect(page.locator("#status")).to_have_text("offline", timeout=LOAD)
    expect(page.locator("#queued")).to_have_text("5")
    assert texts_handled(demo_server, prefix) == []
    page.click("#online")
    expect(page.locator("#status")).to_have_text("connected", timeout=LOAD)
    expect(page.locator("#queued")).to_have_text("0", timeout=10_000)
    assert texts_handled(demo_server, prefix) == [f"{prefix}{n}" for n in range(5)]
    assert outbox_size(page, "reload-test") == 0


def numbers_shown(page: Page) -> list[int]:
    return [int(n) for n in page.locator("#messages li").evaluate_all("items => items.map(i => i.dataset.n)")]


def test_room_messages_sent_while_the_tab_was_closed_arrive_once_in_order(context, demo_server, net_log):
    room, url = f"closed-{uuid.uuid4().hex[:8]}", None
    url = page_url(demo_server, room=room, db="closed-tab")
    first = context.new_page()
    first.goto(url)
    expect(first.locator("#status")).to_have_text("connected", timeout=LOAD)
    for n in range(1, 4):
        publish(demo_server, room, n)
    expect(first.locator("#received")).to_have_text("3", timeout=10_000)
    # Handled, then stored: close the tab only once the offset is committed,
    # or message 3 comes again (as promised: at-least-once to handlers).
    wait_for_stored_offset(first, "closed-tab", room, shown_offset(first, 3))
    first.close()
    for n in range(4, 9):
        publish(demo_server, room, n)
    again = context.new_page()
    again.goto(url)
    expect(again.locator("#status")).to_have_text("connected", timeout=LOAD)
    expect(again.locator("#received")).to_have_text("5", timeout=10_000)
    publish(demo_server, room, 9)
    expect(again.locator("#received")).to_have_text("6", timeout=10_000)
    assert numbers_shown(again) == [4, 5, 6, 7, 8, 9]
    expect(again.locator("#missing")).to_have_text("0")
    expect(again.locator("#duplicates")).to_have_text("0")
    assert debug(again)["rooms"][room] >= 9


def test_reload_in_the_middle_of_a_large_flush_loses_and_duplicates_nothing(page: Page, demo_server, net_log):
    prefix, count = f"big{uuid.uuid4().hex[:6]}-", 400
    page.goto(page_url(demo_server, db="big-flush"))
    expect(page.locator("#status")).to_have_text("connected", timeout=LOAD)
    page.click("#offline")
    expect(page.locator("#status")).to_have_text("offline")
    page.evaluate("([n, prefix]) => shotx_send_many(n, prefix)", [count, prefix])
    expect(page.locator("#queued")).to_have_text(str(count))
    assert outbox_size(page, "big-flush") == count
    page.click("#online")
    deadline_hit = True
    for _ in range(400):
        if len(texts_handled(demo_server, prefix)) >= 20:
            deadline_hit = False
            break
        page.wait_for_timeout(10)
    assert not deadline_hit, "the flush never started"
    page.reload()  # mid-flush: some sent and acked, some sent unacked, some unsent
    expect(page.locator("#status")).to_have_text("connected", timeout=LOAD)
    expect(page.locator("#queued")).to_have_text("0", timeout=30_000)
    done = texts_handled(demo_server, prefix)
    assert done == [f"{prefix}{i}" for i in range(count)]
    assert outbox_size(page, "big-flush") == 0


def test_two_tabs_share_the_outbox_without_double_execution(context, demo_server, net_log):
    prefix = f"tabs{uuid.uuid4().hex[:6]}-"
    url = page_url(demo_server, db="two-tabs")
    tabs = [context.new_page(), context.new_page()]
    for tab in tabs:
        tab.goto(url)
        expect(tab.locator("#status")).to_have_text("connected", timeout=LOAD)
        tab.click("#offline")
        expect(tab.locator("#status")).to_have_text("offline")
    for name, tab in zip("ab", tabs):
        tab.evaluate("([n, prefix]) => shotx_send_many(n, prefix)", [30, f"{prefix}{name}"])
    expect(tabs[1].locator("#queued")).to_have_text("30")
    assert outbox_size(tabs[0], "two-tabs") == 60
    for tab in tabs:
        tab.reload()  # both tabs now load all 60 records from the shared database
    for tab in tabs:
        expect(tab.locator("#status")).to_have_text("offline", timeout=LOAD)
    for tab in tabs:
        tab.click("#online")
    for tab in tabs:
        expect(tab.locator("#status")).to_have_text("connected", timeout=LOAD)
        expect(tab.locator("#queued")).to_have_text("0", timeout=30_000)
    done = texts_handled(demo_server, prefix)
    for name in "ab":
        assert [t for t in done if t.startswith(f"{prefix}{name}")] == [f"{prefix}{name}{i}" for i in range(30)]
    assert len(done) == 60 and outbox_size(tabs[0], "two-tabs") == 0


def test_disconnect_leaves_no_proxy_behind(page: Page, demo_server, net_log):
    page.goto(page_url(demo_server, room=f"p-{uuid.uuid4().hex[:6]}"))
    expect(page.locator("#status")).to_have_text("connected", timeout=LOAD)
    page.fill("#message", "one")
    page.click("#send")
    expect(page.locator("#replied")).to_have_text("1", timeout=10_000)
    assert debug(page)["proxies"] > 0
    page.click("#offline")
    expect(page.locator("#status")).to_have_text("offline")
    assert debug(page)["proxies"] == 0


def test_without_indexeddb_the_client_falls_back_to_memory_and_says_so(page: Page, demo_server, net_log, console_log):
    # As in a private window of some browsers: opening our database throws.
    # (PyScript itself needs IndexedDB for its package cache, so only ours fails.)
    page.add_init_script("""{
      const open = IDBFactory.prototype.open;
      IDBFactory.prototype.open = function (name, ...rest) {
        if (String(name).startsWith("shotx")) throw new DOMException("The operation is insecure.", "SecurityError");
        return open.call(this, name, ...rest);
      };
    }""")
    page.goto(page_url(demo_server))
    expect(page.locator("#status")).to_have_text("connected", timeout=LOAD)
    # not silent: the client says its store is not durable, and the page shows it
    expect(page.locator("#durable")).to_have_attribute("data-durable", "0")
    assert debug(page)["durable"] is False
    page.fill("#message", "memory only")
    page.click("#send")
    expect(page.locator("#replied")).to_have_text("1", timeout=10_000)
    assert sum("IndexedDB unavailable" in line for line in console_log.lines) == 1, console_log.text()


def test_replies_of_sends_queued_before_a_reload_are_shown_after_it(page: Page, demo_server, net_log, console_log):
    prefix, db = f"rr{uuid.uuid4().hex[:6]}-", f"restored-{uuid.uuid4().hex[:6]}"
    page.goto(page_url(demo_server, db=db))
    expect(page.locator("#status")).to_have_text("connected", timeout=LOAD)
    send_offline_by_hand(page, prefix, 3)
    page.reload()  # the send() calls that made them are gone
    expect(page.locator("#queued")).to_have_text("3", timeout=LOAD)
    page.click("#online")
    expect(page.locator("#queued")).to_have_text("0", timeout=30_000)
    expect(page.locator("#replied")).to_have_text("3", timeout=10_000)
    restored = page.locator("#replies li[data-restored='1']").all_text_contents()
    assert restored == [f"{prefix}{n}" for n in range(3)]
    assert texts_handled(demo_server, prefix) == [f"{prefix}{n}" for n in range(3)]


def test_a_file_chosen_on_the_page_is_sent_as_bytes_and_a_room_file_is_listed(page: Page, demo_server, net_log,
                                                                            console_log):
    """The file picker as a person uses it: choose, send, see the reply; and a file published to
    the room (POST /demo/publish_file) shows under "Files in the room" with its size."""
    room = f"f-{uuid.uuid4().hex[:8]}"
    content = os.urandom(300_000)
    name = f"photo-{uuid.uuid4().hex[:6]}.jpg"
    page.goto(page_url(demo_server, room=room, db=f"files-{uuid.uuid4().hex[:6]}"))
    expect(page.locator("#status")).to_have_text("connected", timeout=LOAD)
    page.click("#send-file")  # nothing chosen yet: said so, nothing sent
    expect(page.locator("#replies li[data-error='NO_FILE']")).to_have_count(1)
    page.set_input_files("#file", files=[{"name": name, "mimeType": "image/jpeg", "buffer": content}])
    page.click("#send-file")
    expect(page.locator("#replies li").last).to_have_text(f"{name} (300000 bytes)", timeout=10_000)
    ran = [d for d in handled(demo_server) if isinstance(d, dict) and d.get("name") == name]
    assert ran == [{"name": name, "file": {"bytes": 300_000, "sha256": hashlib.sha256(content).hexdigest()}}]
    published = post_file(demo_server, room, "report.pdf", content[:1234])
    expect(page.locator("#files li")).to_have_count(1, timeout=10_000)
    shown = page.locator("#files li").first
    assert (shown.get_attribute("data-name"), shown.get_attribute("data-size")) == ("report.pdf", "1234")
    assert shown.get_attribute("data-offset") == str(published["offset"])
    assert not console_log.errors, console_log.errors


def test_a_file_sent_offline_survives_a_reload_and_runs_once(page: Page, demo_server, net_log, console_log):
    db, name = f"file-offline-{uuid.uuid4().hex[:6]}", f"notes-{uuid.uuid4().hex[:6]}.bin"
    content = os.urandom(200_000)
    page.goto(page_url(demo_server, db=db))
    expect(page.locator("#status")).to_have_text("connected", timeout=LOAD)
    page.click("#offline")
    expect(page.locator("#status")).to_have_text("offline")
    page.set_input_files("#file", files=[{"name": name, "mimeType": "application/octet-stream", "buffer": content}])
    page.click("#send-file")
    expect(page.locator("#queued")).to_have_text("1")
    page.reload()
    expect(page.locator("#queued")).to_have_text("1", timeout=LOAD)
    page.click("#online")
    expect(page.locator("#queued")).to_have_text("0", timeout=30_000)
    expect(page.locator("#replies li[data-restored='1']")).to_have_text([f"{name} (200000 bytes)"], timeout=10_000)
    ran = [d for d in handled(demo_server) if isinstance(d, dict) and d.get("name") == name]
    assert ran == [{"name": name, "file": {"bytes": 200_000, "sha256": hashlib.sha256(content).hexdigest()}}]
    assert not console_log.errors, console_log.errors


def test_a_tab_closed_through_more_than_a_replay_page_gets_every_message_once(context, demo_server, net_log):
    """1,200 messages while the tab was closed: the rejoin's replay is three pages of 500, over
    Chromium's WebSocket with permessage-deflate (the server's writer path, not the direct one)."""
    room, db = f"pages-{uuid.uuid4().hex[:8]}", f"pages-{uuid.uuid4().hex[:6]}"
    url = page_url(demo_server, room=room, db=db)
    first = context.new_page()
    first.goto(url)
    expect(first.locator("#status")).to_have_text("connected", timeout=LOAD)
    publish(demo_server, room, 1)
    expect(first.locator("#received")).to_have_text("1", timeout=10_000)
    wait_for_stored_offset(first, db, room, shown_offset(first, 1))
    first.close()
    for n in range(2, 1202):
        publish(demo_server, room, n)
    again = context.new_page()
    again.goto(url)
    expect(again.locator("#received")).to_have_text("1200", timeout=60_000)
    assert numbers_shown(again) == list(range(2, 1202))
    expect(again.locator("#missing")).to_have_text("0")
    expect(again.locator("#duplicates")).to_have_text("0")
