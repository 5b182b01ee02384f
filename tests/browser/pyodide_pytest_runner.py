"""Run one test module under pytest, inside Pyodide.

This file is not imported by CPython: the browser test reads it as text and
executes it in the page's Pyodide, where ``pytest`` and ``shotx`` come from
the bundle's pyodide-lock.json. Using pytest itself (not a loop over
``test_*`` functions) keeps parametrize, ``pytest.raises`` and marks working
exactly as on CPython, so the two runs can be compared test id by test id.

``run_test_module(filename, source)`` returns JSON::

    {"python": [3, 14, 2], "platform": "emscripten", "exit_code": 0,
     "tests": {"test_core.py::test_x": {"outcome": "passed", "detail": ""}},
     "collect_errors": []}
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest


class OutcomeRecorder:
    """pytest plugin: one outcome per test id; a failing setup or teardown fails it."""

    def __init__(self) -> None:
        self.tests: dict[str, dict[str, str]] = {}
        self.collect_errors: list[str] = []

    def pytest_runtest_logreport(self, report: Any) -> None:
        entry = self.tests.setdefault(report.nodeid, {"outcome": "passed", "detail": ""})
        if report.failed:
            entry.update(outcome="failed", detail=f"[{report.when}] {report.longreprtext}")
        elif report.skipped and entry["outcome"] == "passed":
            entry.update(outcome="skipped", detail=report.longreprtext)

    def pytest_collectreport(self, report: Any) -> None:
        if report.failed:
            self.collect_errors.append(report.longreprtext)


def run_test_module(filename: str, source: str) -> str:
    """Write ``source`` to the in-memory file system as ``filename`` and run pytest on it."""
    folder = Path(tempfile.mkdtemp(prefix="shotx-unit-"))
    path = folder / filename
    path.write_text(source, encoding="utf-8")
    recorder = OutcomeRecorder()
    exit_code = pytest.main(
        [str(path), "-q", f"--rootdir={folder}", "-p", "no:cacheprovider", "-p", "no:faulthandler"],
        plugins=[recorder],
    )
    return json.dumps({
        "python": list(sys.version_info[:3]),
        "platform": sys.platform,
        "exit_code": int(exit_code),
        "tests": recorder.tests,
        "collect_errors": recorder.collect_errors,
    })
