"""Every ``>>>`` example in the library's docstrings runs and shows what it says.

The docstrings are where STYLE.md puts the why, and their examples are the
first code a reader copies; nothing ran them before this test (two had
drifted from what the code prints). The two browser-only modules import
Pyodide's ``js`` and cannot load in CPython: their behaviour is tested in
Chromium (tests/browser), and they are named here so that any other module
that fails to import fails this test.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest
import shotx.client
import shotx.server

BROWSER_ONLY = {"shotx.client.indexeddb_store", "shotx.client.js_transport"}
MODULES = sorted(f"{package.__name__}.{info.name}" for package in (shotx.client, shotx.server)
                 for info in pkgutil.iter_modules(package.__path__))


@pytest.mark.parametrize("name", [name for name in MODULES if name not in BROWSER_ONLY])
def test_docstring_examples_run_as_written(name: str) -> None:
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in finder.find(module):
        runner.run(test)
    results = runner.summarize(verbose=False)
    assert results.failed == 0, f"{results.failed} of {results.attempted} examples in {name} failed (printed above)"


def test_the_browser_only_modules_are_the_ones_that_need_pyodide() -> None:
    for name in BROWSER_ONLY:
        with pytest.raises(ModuleNotFoundError, match="'js'"):
            importlib.import_module(name)
    assert BROWSER_ONLY <= set(MODULES)
