"""The wheel holds every module, and installs with no dependency in Pyodide.

An editable install imports any file under server/ or browser_client/, but
the wheel only holds what pyproject.toml lists, so a missing module or
package would pass every other test and break only for users (and in the
browser, which always installs the wheel). The dependency check guards the
other promise: ``micropip``/``loadPackage`` in Pyodide must pull in nothing.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
REQUIRED_FILES = [
    "shotx/client/__init__.py",
    "shotx/client/protocol.py",
    "shotx/client/core.py",
    "shotx/client/errors.py",
    "shotx/client/py.typed",
    "shotx/server/__init__.py",
    "shotx/server/py.typed",
]
# Bounds the build: without network or build isolation it takes about 1 s.
pytestmark = pytest.mark.timeout(60)


def build_wheel(out_dir: Path) -> Path:
    """Build the wheel from a copy of the sources, as build.py does.

    The copy keeps setuptools' build/ and egg-info out of the work tree; cwd
    is not the repo root, where `-m build` would find our build.py.
    """
    source = out_dir / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in ("server", "browser_client"):
        shutil.copytree(ROOT / folder, source / folder, ignore=ignore)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, source / name)
    # Without isolation when the backend is installed (build.py's venv has
    # it): an isolated build downloads setuptools each time.
    no_isolation = ["--no-isolation"] if importlib.util.find_spec("setuptools") else []
    command = [sys.executable, "-m", "build", "-q", "--wheel", *no_isolation,
               "--outdir", str(out_dir), str(source)]
    subprocess.run(command, cwd=out_dir, check=True, capture_output=True, text=True, timeout=50)
    (wheel,) = out_dir.glob("shotx-*.whl")
    return wheel


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[zipfile.ZipFile]:
    with zipfile.ZipFile(build_wheel(tmp_path_factory.mktemp("wheel"))) as archive:
        yield archive


def requirements(wheel: zipfile.ZipFile) -> list[Requirement]:
    """The wheel's Requires-Dist entries."""
    (metadata_name,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    metadata = Parser().parsestr(wheel.read(metadata_name).decode())
    return [Requirement(line) for line in metadata.get_all("Requires-Dist") or []]


def test_wheel_contains_every_module_and_py_typed(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    assert [f for f in REQUIRED_FILES if f not in names] == []


def test_wheel_ships_every_source_module(wheel: zipfile.ZipFile) -> None:
    """A module in a sub-folder pyproject does not list would vanish here."""
    names = set(wheel.namelist())
    sources = {f"shotx/{package}/{path.relative_to(ROOT / folder).as_posix()}"
               for folder, package in (("server", "server"), ("browser_client", "client"))
               for path in (ROOT / folder).rglob("*.py")}
    assert sorted(sources - names) == []


def test_every_runtime_dependency_is_skipped_on_emscripten(wheel: zipfile.ZipFile) -> None:
    runtime = [req for req in requirements(wheel) if "extra" not in str(req.marker)]
    assert runtime, "expected python-socketio & co. as CPython dependencies"
    unmarked = [str(req) for req in runtime if 'sys_platform != "emscripten"' not in str(req.marker)]
    assert unmarked == []


def test_pyodide_install_pulls_in_nothing(wheel: zipfile.ZipFile) -> None:
    pyodide = {key: str(value) for key, value in default_environment().items()}
    pyodide |= {"extra": "", "sys_platform": "emscripten", "platform_system": "Emscripten"}
    pulled = [str(req) for req in requirements(wheel)
              if req.marker is None or req.marker.evaluate(pyodide)]
    assert pulled == []
