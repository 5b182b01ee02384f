"""Driving the demo page (web/index.html) from a test: its URL, the demo
server's HTTP hooks, and what IndexedDB holds, read straight from JavaScript.

    >>> page.goto(page_url(base, db="my-test"))                     # doctest: +SKIP
    >>> texts_handled(base, "my-prefix-")                          # doctest: +SKIP
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from playwright.sync_api import Page, expect

LOAD = 60_000  # Pyodide's first start on a cold, shared machine


def page_url(base: str, **params: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"{base}/?{query}" if query else f"{base}/"


def handled(base: str) -> list[Any]:
    """What the demo server's test_route ran with, in order (GET /demo/handled)."""
    with urllib.request.urlopen(f"{base}/demo/handled", timeout=10) as response:
        result: list[Any] = json.load(response)
        return result


def publish(base: str, room: str, n: int) -> None:
    request = urllib.request.Request(f"{base}/demo/publish?room={room}", data=json.dumps({"n": n}).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    urllib.request.urlopen(request, timeout=10).read()


def post_file(base: str, room: str, name: str, content: bytes) -> dict[str, Any]:
    """``POST /demo/publish_file``: a ``file`` room message with these bytes; returns the send's answer."""
    request = urllib.request.Request(f"{base}/demo/publish_file?room={room}&name={name}", data=content,
                                     method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        answer: dict[str, Any] = json.load(response)
        return answer


def texts_handled(base: str, prefix: str) -> list[str]:
    return [d["text"] for d in handled(base) if isinstance(d, dict) and str(d.get("text", "")).startswith(prefix)]


def outbox_size(page: Page, db: str) -> int:
    """Count the IndexedDB outbox straight from JavaScript, not through our code."""
    count: int = page.evaluate("""(db) => new Promise((resolve, reject) => {
        const open = indexedDB.open(db);
        open.onerror = () => reject(open.error);
        open.onsuccess = () => {
          const tx = open.result.transaction("outbox", "readonly");
          const count = tx.objectStore("outbox").count();
          count.onsuccess = () => { resolve(count.result); open.result.close(); };
        };
      })""", db)
    return count


def wait_for_stored_offset(page: Page, db: str, room: str, offset: int, timeout: float = 10_000) -> None:
    """Wait until IndexedDB has committed ``room``'s offset at ``offset`` or later.

    The page handles a room message, then stores its offset: a tab closed in
    between gets the message again on its next visit (at-least-once to
    handlers). A test of "no message twice" must close the tab after this.
    """
    # Playwright's wait_for_function does not await a predicate's promise, so
    # the page polls its own IndexedDB (each read a fresh transaction).
    page.evaluate("""([db, room, offset, timeout]) => new Promise((resolve, reject) => {
        const deadline = performance.now() + timeout;
        const check = () => {
          const open = indexedDB.open(db);
          open.onerror = () => reject(open.error);
          open.onsuccess = () => {
            const get = open.result.transaction("rooms", "readonly").objectStore("rooms").get(room);
            get.onerror = () => { open.result.close(); reject(get.error); };
            get.onsuccess = () => {
              open.result.close();
              const stored = get.result ? get.result.offset : null;
              if (stored !== null && stored >= offset) resolve(stored);
              else if (performance.now() > deadline) reject(new Error(
                `Timeout: ${room}'s stored offset is ${stored}, not yet ${offset}`));
              else setTimeout(check, 20);
            };
          };
        };
        check();
      })""", [db, room, offset, timeout])


def shown_offset(page: Page, n: int) -> int:
    """The room offset of the message numbered ``n`` on the page (its data-offset)."""
    return int(page.locator(f'#messages li[data-n="{n}"]').get_attribute("data-offset") or "-1")


def send_offline_by_hand(page: Page, prefix: str, count: int) -> None:
    """Click "Go offline", then type and send ``prefix0`` … as a person would; all are queued."""
    page.click("#offline")
    expect(page.locator("#status")).to_have_text("offline")
    for n in range(count):
        page.fill("#message", f"{prefix}{n}")
        page.click("#send")
    expect(page.locator("#queued")).to_have_text(str(count))


def click_when_queued_at_most(page: Page, count: int, button: str, timeout: float = 30_000) -> int:
    """Click ``button`` the moment #queued shows <= count; return what it showed.

    Watched inside the page (a MutationObserver on the counter), so the click
    lands within one page update of the count, not a test round trip later:
    a flush of hundreds can end in the time a Playwright click takes.
    """
    shown: int = page.evaluate("""([count, button, timeout]) => new Promise((resolve, reject) => {
        const queued = document.querySelector("#queued");
        const check = () => {
          const n = Number(queued.textContent);
          if (n > count) return false;
          observer.disconnect(); clearTimeout(timer);
          document.querySelector(button).click();
          resolve(n);
          return true;
        };
        const observer = new MutationObserver(check);
        const timer = setTimeout(() => { observer.disconnect(); reject(new Error(
          `#queued still shows ${queued.textContent}, more than ${count}`)); }, timeout);
        if (!check()) observer.observe(queued, { childList: true, characterData: true, subtree: true });
      })""", [count, button, timeout])
    return shown


def debug(page: Page) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(page.evaluate("shotx_debug()"))
    return result
