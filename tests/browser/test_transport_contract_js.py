"""The transport contract (transport.py) held against JsTransport: the cases
of tests/contract/transport_contract.py, the very file CPython runs against
SocketioTransport, run inside the page's Pyodide against the JavaScript
socket.io-client, over real loopback sockets to a real demo server.

It lives here, not in tests/contract/, because it needs this folder's
Chromium fixtures (and must run after the pytest-asyncio tests, see
conftest.py)."""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import Iterator

import pytest
from demo_servers import ROOT
from page_logs import NetLog
from playwright.sync_api import Browser, Page

CONTRACT = ROOT / "tests" / "contract" / "transport_contract.py"
sys.path.insert(0, str(CONTRACT.parent))
from transport_contract import CASES, KILLS_SERVER  # noqa: E402

RUN_CASE = """
async ({ source, name, url, deadUrl }) => {
  const pyodide = await window.pyodideReady;
  await pyodide.loadPackage(["shotx"]);
  pyodide.FS.mkdirTree("/tmp/contract");
  pyodide.FS.writeFile("/tmp/contract/transport_contract.py", source);
  pyodide.runPython("import sys; '/tmp/contract' in sys.path or sys.path.insert(0, '/tmp/contract')");
  const contract = pyodide.pyimport("transport_contract");
  const run = contract.run_in_browser;
  try {
    return await run(name, url, deadUrl);
  } finally {
    run.destroy();
    contract.destroy();
  }
}
"""


def dead_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def run_case(page: Page, case: str, url: str) -> None:
    result = json.loads(page.evaluate(RUN_CASE, {
        "source": CONTRACT.read_text(encoding="utf-8"), "name": case, "url": url, "deadUrl": dead_url(),
    }))
    assert result["outcome"] == "passed", result["detail"]


@pytest.fixture(scope="module")
def shared_page(browser: Browser, demo_server: str) -> Iterator[tuple[Page, NetLog]]:
    """One page (one Pyodide start) for every case that leaves its server alive."""
    context = browser.new_context()
    page = context.new_page()
    log = NetLog()
    log.attach(context, page)

    def refuse_drop() -> None:
        raise AssertionError("this case kills its server: list it in KILLS_SERVER")

    page.expose_function("shotxContractDrop", refuse_drop)
    page.goto(f"{demo_server}/pyodide-tests.html")
    yield page, log
    context.close()


@pytest.mark.parametrize("case", [name for name in CASES if name not in KILLS_SERVER])
def test_js_transport_keeps_the_contract(case: str, shared_page: tuple[Page, NetLog], demo_server: str) -> None:
    page, log = shared_page
    run_case(page, case, demo_server)
    assert log.offsite == []


@pytest.mark.parametrize("case", sorted(KILLS_SERVER))
def test_js_transport_keeps_the_contract_when_the_server_dies(
    case: str, page: Page, start_server, net_log, console_log
) -> None:
    server = start_server()
    page.expose_function("shotxContractDrop", server.kill)
    page.goto(f"{server.url}/pyodide-tests.html")
    run_case(page, case, server.url)
    assert net_log.offsite == []
