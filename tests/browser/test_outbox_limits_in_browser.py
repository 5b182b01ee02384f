"""The outbox's limits in real Chromium: the browser's storage quota surfaces as
OutboxFull with the queue intact, and the page shows whether its store is durable.

A real quota: the page's database is opened in a Storage Bucket with a quota
of its own (``navigator.storageBuckets.open(name, {quota})``), so IndexedDB
itself aborts the write with ``QuotaExceededError``. (The DevTools protocol's
``Storage.overrideQuotaForOrigin`` reports the override as active, but this
Chromium still completes IndexedDB writes past it.)
"""

from __future__ import annotations

import uuid

from demo_page import LOAD, debug, outbox_size, page_url, send_offline_by_hand, texts_handled
from playwright.sync_api import Page, expect

QUOTA = 300_000  # the bucket's bytes: the schema and a few small sends fit, a 1.5 MB send does not

TINY_BUCKET = """([db, quota]) => {
  const open = IDBFactory.prototype.open;
  let factory = null;
  navigator.storageBuckets.open(db, { quota }).then((bucket) => { factory = bucket.indexedDB; });
  IDBFactory.prototype.open = function (name, ...rest) {
    if (String(name) !== db) return open.call(this, name, ...rest);
    if (factory === null) throw new DOMException("the test's bucket is not open yet", "InvalidStateError");
    return open.call(factory, name, ...rest);
  };
}"""


def test_a_storage_quota_error_is_outbox_full_and_the_queue_stays(page: Page, demo_server, net_log, console_log):
    prefix, db = f"q{uuid.uuid4().hex[:6]}-", f"quota-{uuid.uuid4().hex[:6]}"
    page.add_init_script(f"({TINY_BUCKET})({[db, QUOTA]!r})")
    page.goto(page_url(demo_server, db=db))
    expect(page.locator("#status")).to_have_text("connected", timeout=LOAD)
    expect(page.locator("#durable")).to_have_attribute("data-durable", "1")  # IndexedDB opened (in the bucket)
    send_offline_by_hand(page, prefix, 3)
    # 1.5 MB of random hex (IndexedDB compresses values: repeated text would fit)
    page.evaluate("""(prefix) => {
        const bytes = crypto.getRandomValues(new Uint8Array(65536));
        const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
        document.querySelector("#message").value = prefix + "big-" + hex.repeat(12);
      }""", prefix)
    page.click("#send")
    refused = page.locator("#replies li[data-error='OUTBOX_FULL']")
    expect(refused).to_have_count(1, timeout=10_000)
    assert "storage quota" in refused.text_content() and "QuotaExceededError" in refused.text_content()
    expect(page.locator("#queued")).to_have_text("3")
    assert outbox_size(page, db) == 3  # nothing of the refused send was stored, the three before it are
    page.fill("#message", f"{prefix}3")  # a small one still fits
    page.click("#send")
    expect(page.locator("#queued")).to_have_text("4")
    page.click("#online")
    expect(page.locator("#status")).to_have_text("connected", timeout=LOAD)
    expect(page.locator("#queued")).to_have_text("0", timeout=10_000)
    assert texts_handled(demo_server, prefix) == [f"{prefix}{n}" for n in range(4)]
    assert outbox_size(page, db) == 0
    assert debug(page)["durable"] is True


def test_a_flush_through_the_servers_rate_limit_runs_each_once_in_order(page: Page, start_server, net_log,
                                                                         console_log):
    """Under Pyodide: 2007 answers pause the flush, and the refused sends go again, in order."""
    server = start_server(options=["--messages-per-second", "100", "--message-burst", "20", "--verbose"])
    prefix, db = f"l{uuid.uuid4().hex[:6]}-", f"limits-{uuid.uuid4().hex[:6]}"
    page.goto(page_url(server.url, db=db))
    expect(page.locator("#status")).to_have_text("connected", timeout=LOAD)
    page.click("#offline")
    expect(page.locator("#status")).to_have_text("offline")
    page.evaluate("([n, prefix]) => shotx_send_many(n, prefix)", [300, prefix])
    expect(page.locator("#queued")).to_have_text("300", timeout=30_000)
    page.click("#online")
    expect(page.locator("#queued")).to_have_text("0", timeout=30_000)  # 280 past the burst at 100/s: ~3 s
    assert texts_handled(server.url, prefix) == [f"{prefix}{n}" for n in range(300)]
    assert outbox_size(page, db) == 0
    assert any("Limit exceeded" in line for line in server.output)  # the server did refuse (2007), at INFO
