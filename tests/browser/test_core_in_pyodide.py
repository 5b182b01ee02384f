"""The client's pure-core unit tests, run unchanged inside Pyodide.

The same files that CPython runs (tests/unit/test_core.py and
test_protocol.py) are handed to pytest inside the browser's Pyodide, where
``shotx`` is our wheel from the bundle's lock. A difference between CPython
3.12+ and Pyodide's Python 3.14 cannot hide, and a file that silently runs
nothing in the browser fails, because the test ids must match the ones
CPython's pytest collects.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from demo_servers import ROOT
from page_logs import ConsoleLog, NetLog
from playwright.sync_api import Page

UNIT_TESTS = ROOT / "tests" / "unit"
PURE_CORE_TEST_FILES = ("test_core.py", "test_protocol.py")
RUNNER = Path(__file__).with_name("pyodide_pytest_runner.py")
# micropip is not needed here, but loading it proves the bundle's lock
# serves it (PyScript pages install `packages` with it).
PACKAGES = ["micropip", "shotx", "pytest"]

RUN_IN_PYODIDE = """
async ({ packages, runner, filename, source }) => {
  const pyodide = await window.pyodideReady;
  await pyodide.loadPackage(packages);
  const missing = packages.filter((name) => !(name in pyodide.loadedPackages));
  if (missing.length) throw new Error("packages not loaded from the lock: " + missing);
  const namespace = pyodide.globals.get("dict")();
  pyodide.runPython(runner, { globals: namespace });
  const run = namespace.get("run_test_module");
  try {
    return run(filename, source);
  } finally {
    run.destroy();
    namespace.destroy();
  }
}
"""


def collected_by_cpython(path: Path) -> list[str]:
    """Test ids (after the file name) that CPython's pytest collects from ``path``."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", str(path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    no_tests_collected = 5
    assert result.returncode in (0, no_tests_collected), (
        f"collecting {path} failed:\n{result.stdout}\n{result.stderr}")
    ids = (line.partition("::") for line in result.stdout.splitlines())
    return sorted(test for file, _, test in ids if test and Path(file).name == path.name)


def run_in_pyodide(page: Page, base_url: str, path: Path) -> dict[str, Any]:
    """Run the test file under pytest in the page's Pyodide; the runner's JSON, parsed."""
    page.goto(f"{base_url}/pyodide-tests.html")
    raw = page.evaluate(RUN_IN_PYODIDE, {
        "packages": PACKAGES,
        "runner": RUNNER.read_text(encoding="utf-8"),
        "filename": path.name,
        "source": path.read_text(encoding="utf-8"),
    })
    result: dict[str, Any] = json.loads(raw)
    return result


def failures(result: dict[str, Any]) -> str:
    """The failed tests with their reports, for the assertion message."""
    return "\n\n".join(f"{test_id}\n{entry['detail']}" for test_id, entry in result["tests"].items()
                       if entry["outcome"] == "failed")


def check_same_tests_pass(page: Page, base_url: str, path: Path, net_log: NetLog) -> None:
    """Every test CPython collects from ``path`` runs and passes in Pyodide 3.14+."""
    expected = collected_by_cpython(path)
    assert expected, f"pytest collects no test from {path}"
    result = run_in_pyodide(page, base_url, path)
    assert result["platform"] == "emscripten"
    assert tuple(result["python"]) >= (3, 14), result["python"]
    assert not result["collect_errors"], "\n".join(result["collect_errors"])
    if failed := failures(result):
        pytest.fail(f"failed in Pyodide:\n{failed}")
    ran = sorted(test_id.split("::", 1)[1] for test_id in result["tests"])
    assert ran == expected, "Pyodide ran other tests than CPython collects"
    assert result["exit_code"] == 0, result
    assert net_log.offsite == [], net_log.offsite


@pytest.mark.parametrize("filename", PURE_CORE_TEST_FILES)
def test_unit_file_passes_in_pyodide(
    filename: str, page: Page, demo_server: str, net_log: NetLog, console_log: ConsoleLog
) -> None:
    path = UNIT_TESTS / filename
    assert path.is_file(), f"{path} is missing"
    check_same_tests_pass(page, demo_server, path, net_log)
