"""Fuzzing with hypothesis: profiles, and a real server on a loop of its own.

Profiles: ``ci`` (picked when ``CI`` is set) is derandomized, so a failure
found in CI reproduces on every run and every machine; ``dev`` (the
default elsewhere) draws new inputs each run and keeps failures in the local
example database (under ``build/hypothesis``). ``HYPOTHESIS_PROFILE`` picks one explicitly, and
``SHOTX_FUZZ_SCALE`` multiplies every test's example count (``10`` for a
longer hunt; CI runs at 1).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from ci_env import in_ci
from hypothesis import HealthCheck, settings
from hypothesis.configuration import set_hypothesis_home_dir

from fuzz_server import INPUTS, CrashLog, LoopThread

# Hypothesis keeps its example database and caches under build/ (ignored), not in a .hypothesis/ of the tree.
set_hypothesis_home_dir(str(Path(__file__).resolve().parents[2] / "build" / "hypothesis"))

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True, database=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("dev", deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if in_ci() else "dev"))


@pytest.fixture(scope="module")
def loop_thread() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.close()


@pytest.fixture(scope="module")
def crash_log() -> Iterator[CrashLog]:
    handler = CrashLog()
    root = logging.getLogger()
    root.addHandler(handler)
    yield handler
    root.removeHandler(handler)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """How many inputs the fuzzers checked (hypothesis counts examples; an example may hold several)."""
    if INPUTS:
        terminalreporter.section("fuzz inputs")
        for name, count in sorted(INPUTS.items()):
            terminalreporter.write_line(f"{count:7d}  {name}")
        terminalreporter.write_line(f"{sum(INPUTS.values()):7d}  in all")
