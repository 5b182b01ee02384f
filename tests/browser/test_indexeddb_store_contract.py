"""The client store contract (tests/integration/client_store_scenarios.py, the
file CPython runs against memory and SQLite) run unchanged in Chromium's
Pyodide against IndexedDBStore, on a real IndexedDB."""

from __future__ import annotations

import json

import pytest
from demo_servers import ROOT
from page_logs import ConsoleLog, NetLog
from playwright.sync_api import Page

SCENARIOS_FILE = ROOT / "tests" / "integration" / "client_store_scenarios.py"
RUN = """
async ({ source }) => {
  const pyodide = await window.pyodideReady;
  await pyodide.loadPackage(["shotx"]);
  const namespace = pyodide.globals.get("dict")();
  namespace.set("SOURCE", source);
  try {
    return await pyodide.runPythonAsync(`
import json, sys, traceback, types, uuid
from shotx.client.indexeddb_store import IndexedDBStore

module = types.ModuleType("client_store_scenarios")
exec(compile(SOURCE, "client_store_scenarios.py", "exec"), module.__dict__)
results = {}
for name, scenario in module.SCENARIOS.items():
    db = f"contract-{name}-{uuid.uuid4().hex[:8]}"
    store = IndexedDBStore(db)
    try:
        await scenario(store, lambda: IndexedDBStore(db))
        results[name] = "passed" if store._fallback is None else "fell back to memory"
    except BaseException:
        results[name] = traceback.format_exc()
    finally:
        await store.close()
json.dumps({"platform": sys.platform, "results": results})
`, { globals: namespace });
  } finally {
    namespace.destroy();
  }
}
"""


def scenario_names() -> list[str]:
    source = SCENARIOS_FILE.read_text(encoding="utf-8")
    namespace: dict = {}
    exec(compile(source, str(SCENARIOS_FILE), "exec"), namespace)
    return sorted(namespace["SCENARIOS"])


def test_indexeddb_keeps_the_client_store_contract(page: Page, demo_server: str, net_log: NetLog,
                                                   console_log: ConsoleLog) -> None:
    page.goto(f"{demo_server}/pyodide-tests.html")
    outcome = json.loads(page.evaluate(RUN, {"source": SCENARIOS_FILE.read_text(encoding="utf-8")}))
    assert outcome["platform"] == "emscripten"
    assert sorted(outcome["results"]) == scenario_names()
    failed = {name: result for name, result in outcome["results"].items() if result != "passed"}
    if failed:
        pytest.fail("\n\n".join(f"{name}:\n{result}" for name, result in failed.items()))
