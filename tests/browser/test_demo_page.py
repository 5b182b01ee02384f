"""The PyScript demo page in real Chromium against a real server: loads from
our origin only, connects, and keeps every send and room message across
offline periods, reloads and closed tabs."""

from __future__ import annotations

import json
import urllib.request
import uuid

from playwright.sync_api import Page, expect

LOAD = 60_000  # Pyodide's first start on a cold, shared machine


def page_url(base: str, **params: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"{base}/?{query}" if query else f"{base}/"


def handled(base: str) -> list:
    with urllib.request.urlopen(f"{base}/demo/handled", timeout=10) as response:
        return json.load(response)


def publish(base: str, room: str, n: int) -> None:
    request = urllib.request.Request(f"{base}/demo/publish?room={room}", data=json.dumps({"n": n}).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    urllib.request.urlopen(request, timeout=10).read()


def outbox_size(page: Page, db: str) -> int:
    """Count the IndexedDB outbox straight from JavaScript, not through our code."""
    return page.evaluate("""(db) => new Promise((resolve, reject) => {
        const open = indexedDB.open(db);
        open.onerror = () => reject(open.error);
        open.onsuccess = () => {
          const tx = open.result.transaction("outbox", "readonly");
          const count = tx.objectStore("outbox").count();
          count.onsuccess = () => { resolve(count.result); open.result.close(); };
        };
      })""", db)


def texts_handled(base: str, prefix: str) -> list[str]:
    return [d["text"] for d in handled(base) if isinstance(d, dict) and str(d.get("text", "")).startswith(prefix)]


def test_page_loads_from_our_origin_only_and_connects(page: Page, demo_server, net_log, console_log):
    page.goto(page_url(demo_server, room=f"r-{uuid.uuid4().hex[:8]}"))
    expect(page.locator("#status")).to_have_text("connected", timeout=LOAD)
    assert net_log.offsite == []
    assert any(url.startswith("WS ") and "/shotx/" in url for url in net_log.seen)
    assert not console_log.errors, console_log.errors


def test_bad_token_shows_auth_fail(page: Page, demo_server, net_log):
    page.goto(page_url(demo_server, token="wrong"))
    expect(page.locator("#status")).to_have_text("error: AUTH_FAIL", timeout=LOAD)


def test_offline_sends_survive_a_reload_and_run_once_in_order(page: Page, demo_server, net_log, console_log):
    prefix = f"t{uuid.uuid4().hex[:8]}-"
    page.goto(page_url(demo_server, db="reload-test"))
    expect(page.locator("#status")).to_have_text("connected", timeout=LOAD)
    page.click("#offline")
    expect(page.locator("#status")).to_have_text("offline")
    for n in range(5):
        page.fill("#message", f"{prefix}{n}")
        page.click("#send")
    expect(page.locator("#queued")).to_have_text("5")
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
