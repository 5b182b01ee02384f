"""The README's browser snippets, run as written against the demo server.

Each ```html block of README.md becomes a page served by a demo server whose
web folder is a temporary copy of the bundle made of symlinks, plus the
snippet pages (a page fulfilled by a Playwright route instead has no address
space, and Chromium's local-network checks then refuse its WebSocket to
127.0.0.1). A snippet passes when it printed the demo server's auth result
and made no request off the machine: the docs cannot drift from what works.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
from demo_servers import ROOT, DemoServer
from page_logs import ConsoleLog, NetLog
from playwright.sync_api import Page

SNIPPETS = re.findall(r"```html\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
CONNECT_TIMEOUT_S = 90  # a cold Pyodide start on a busy 2-core machine
AUTH_RESULT = "'user_id': 'user123'"  # what the demo server's auth handler returns for "valid"


@pytest.fixture(scope="module")
def snippet_server(bundle_dir, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of a demo server that serves the bundle and readme-snippet-N.html."""
    site = tmp_path_factory.mktemp("readme-site")
    for entry in bundle_dir.iterdir():
        (site / entry.name).symlink_to(entry)
    for number, snippet in enumerate(SNIPPETS):
        page = f"<!doctype html>\n<html><head><meta charset='utf-8'></head><body>\n{snippet}</body></html>\n"
        (site / f"readme-snippet-{number}.html").write_text(page)
    server = DemoServer.start(tmp_path_factory.mktemp("readme-store") / "demo.sqlite3", web=site)
    try:
        yield server.url
    finally:
        server.stop()


def test_the_readme_has_the_three_snippets():
    assert len(SNIPPETS) == 3, "README.md: PyScript, loadPackage and wheel-on-sys.path snippets expected"


@pytest.mark.parametrize("number", range(len(SNIPPETS)))
def test_readme_snippet_connects(page: Page, snippet_server: str, net_log: NetLog, console_log: ConsoleLog,
                                 number: int) -> None:
    page.goto(f"{snippet_server}/readme-snippet-{number}.html")
    deadline = time.monotonic() + CONNECT_TIMEOUT_S
    while not any(AUTH_RESULT in line for line in console_log.lines):
        errors = [line for line in console_log.lines if line.startswith(("pageerror", "error"))]
        assert not errors, errors
        assert time.monotonic() < deadline, f"snippet {number} printed no auth result"
        page.wait_for_timeout(100)
    assert net_log.offsite == []
