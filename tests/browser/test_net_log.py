"""The guard behind every "no off-origin request" assertion really guards.

If ``net_log`` stopped seeing requests, those assertions would pass
vacuously; this test proves it sees and refuses both HTTP and WebSocket
traffic that leaves the machine.
"""

from __future__ import annotations

from page_logs import NetLog
from playwright.sync_api import Page

REACH_OUT = """
async () => {
  const fetched = await fetch("https://cdn.example.invalid/x.js").then(() => "loaded", () => "refused");
  const socket = await new Promise((resolve) => {
    const ws = new WebSocket("wss://ws.example.invalid/socket");
    ws.onopen = () => resolve("open");
    ws.onclose = () => resolve("closed");
  });
  return [fetched, socket];
}
"""


def test_off_machine_requests_are_refused_and_recorded(
    page: Page, demo_server: str, net_log: NetLog
) -> None:
    page.goto(f"{demo_server}/pyodide-tests.html")
    assert page.evaluate(REACH_OUT) == ["refused", "closed"]
    assert net_log.offsite == [
        "https://cdn.example.invalid/x.js",
        "WS wss://ws.example.invalid/socket",
    ]
    assert f"{demo_server}/pyodide-tests.html" in net_log.seen
