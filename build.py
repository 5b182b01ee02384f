#!/usr/bin/env python3
"""The Shotx task runner: ``python3 build.py <command> [args...]``.

Commands (each runs the steps it needs first)::

    venv     .venv with Python >= 3.12, the project and its tools installed
    bundle   the offline web bundle in web/dist/ (Pyodide, socket.io, PyScript,
             our wheel and a pyodide-lock.json that lists it; the wheels
             and Pyodide's standard library get Python 3.14 bytecode)
    demo     bundle, then the demo server on http://127.0.0.1:3000
             (extra arguments go to `python -m shotx.server`)
    test     bundle, then pytest over tests/ (extra arguments go to pytest,
             e.g. `python3 build.py test -k core -x`)

Standard library only, so that a fresh machine needs nothing but Python 3.11+,
Node/npm and network access to PyPI and the npm registry. Every step skips
what is already up to date, so a second run takes seconds.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path

from pyodide_bundle import BundleError, add_pyodide_bytecode, keep_only_bundled_packages

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
VENV_PYTHON = VENV / "bin" / "python"
VENV_STAMP = VENV / "shotx-install.stamp"
WEB = ROOT / "web"
NODE_MODULES = WEB / "node_modules"
NPM_STAMP = NODE_MODULES / ".shotx-npm.stamp"
DIST = WEB / "dist"
# PyPI wheels for the Pyodide lock are downloaded once and kept here, so a
# second bundle neither waits for nor needs the network.
WHEEL_CACHE = ROOT / "build" / "pyodide-wheels"

MIN_PYTHON = (3, 12)
PROJECT_EXTRAS = ".[test,redis,fast]"
PACKAGE_FOLDERS = ("server", "browser_client")
# Tools the build itself needs beyond the project's own dependencies.
TOOL_REQUIREMENTS = ("pyodide-build==0.39.2", "pyodide-lock[wheel]==0.2.1")
# Pure-Python wheels from PyPI put into the Pyodide lock. The npm package
# lists these names but ships no wheel files. micropip is what PyScript
# installs `packages` with; pytest and its dependencies let the unit tests run
# unchanged inside Pyodide. Versions match the entries in Pyodide 314.0.7's
# own lock, which add-wheels replaces (with the PyPI wheels' hashes).
PYODIDE_WHEELS = (
    "micropip==0.11.1",
    "packaging==26.1",
    "pytest==9.0.2",
    "pluggy==1.6.0",
    "iniconfig==2.3.0",
    "pygments==2.20.0",
)
PYODIDE_CORE_FILES = (
    "pyodide.mjs",
    "pyodide.js",
    "pyodide.asm.mjs",
    "pyodide.asm.wasm",
    "python_stdlib.zip",
)
LOCK_NAME = "pyodide-lock.json"
WEB_PAGE_PATTERNS = ("*.html", "*.json", "*.py")
WEB_PAGE_EXCLUDES = {"package.json", "package-lock.json"}


class BuildError(Exception):
    """A step cannot go on; the message tells the user what to do."""


def log(message: str) -> None:
    """Print a progress line; flushed so it interleaves with child output."""
    print(f"==> {message}", flush=True)


def run(cmd: Sequence[str | Path], cwd: Path = ROOT) -> None:
    """Run a command, echoing it, and raise BuildError if it fails."""
    shown = " ".join(str(part) for part in cmd)
    print(f"    $ {shown}", flush=True)
    if subprocess.run([str(part) for part in cmd], cwd=cwd).returncode != 0:
        raise BuildError(f"command failed: {shown}")


def sha256_of(*parts: bytes) -> str:
    """Hash of several byte strings, for up-to-date stamps."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()


# --------------------------------------------------------------------------- venv


def python_version(executable: str | Path) -> tuple[int, int] | None:
    """(major, minor) of an interpreter, or None when it does not run.

    Running it, not trusting the name, matters: a pyenv shim named
    python3.13 exists on PATH even where pyenv cannot run it.
    """
    try:
        out = subprocess.run(
            [str(executable), "-c", "import sys; print(*sys.version_info[:2])"],
            capture_output=True, text=True, timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    major, minor = out.stdout.split()
    return int(major), int(minor)


def pyenv_pythons() -> list[Path]:
    """Interpreters under ``$(pyenv root)/versions``, newest first."""
    root = os.environ.get("PYENV_ROOT")
    if shutil.which("pyenv"):
        out = subprocess.run(["pyenv", "root"], capture_output=True, text=True)
        root = out.stdout.strip() or root
    versions = Path(root or Path.home() / ".pyenv") / "versions"
    found: list[tuple[tuple[int, int], Path]] = []
    for folder in versions.glob("3.*"):
        match = re.fullmatch(r"3\.(\d+)\.(\d+)", folder.name)
        if match and (folder / "bin" / "python").exists():
            found.append(((int(match[1]), int(match[2])), folder / "bin" / "python"))
    return [path for _, path in sorted(found, reverse=True)]


def find_python() -> Path:
    """The interpreter the venv is made from: the first one >= 3.12.

    Order: the Python running build.py, python3.13/python3.12 on PATH, then
    pyenv's installed versions (newest first). pyodide-build needs 3.12+.
    """
    candidates: list[str | Path] = [sys.executable]
    candidates += [path for name in ("python3.13", "python3.12") if (path := shutil.which(name))]
    candidates += pyenv_pythons()
    for candidate in candidates:
        version = python_version(candidate)
        if version is not None and version >= MIN_PYTHON:
            return Path(candidate)
    raise BuildError(
        "no Python >= 3.12 found (tried the running one, python3.13/python3.12 "
        "on PATH and pyenv's versions); install one, e.g. `pyenv install 3.13`"
    )


def build_system_requirements() -> list[str]:
    """pyproject's build-system requires, so wheels can build without isolation."""
    with (ROOT / "pyproject.toml").open("rb") as file:
        return list(tomllib.load(file)["build-system"]["requires"])


def package_layout() -> str:
    """Which package folders have an ``__init__.py``.

    The editable install bakes this in: a folder installed without one stays
    a namespace package (and its ``__init__`` is never run) until reinstalled.
    """
    inits = [path.relative_to(ROOT).as_posix() for folder in PACKAGE_FOLDERS
             for path in (ROOT / folder).rglob("__init__.py")]
    return "\n".join(sorted(inits))


def venv_stamp() -> str:
    """What the installed venv must match: pyproject, our pins, the package layout."""
    pins = "\n".join((PROJECT_EXTRAS, *TOOL_REQUIREMENTS))
    return sha256_of((ROOT / "pyproject.toml").read_bytes(), pins.encode(),
                     package_layout().encode())


def step_venv() -> None:
    """Create .venv and install the project, unless the stamp says it is current."""
    wanted = venv_stamp()
    version = python_version(VENV_PYTHON)
    usable = version is not None and version >= MIN_PYTHON
    if usable and VENV_STAMP.exists() and VENV_STAMP.read_text().strip() == wanted:
        log(".venv is up to date")
        return
    if not usable:
        python = find_python()
        log(f"creating .venv with {python}")
        shutil.rmtree(VENV, ignore_errors=True)
        run([python, "-m", "venv", VENV])
    log("installing the project and build tools into .venv")
    VENV_STAMP.unlink(missing_ok=True)
    run([VENV_PYTHON, "-m", "pip", "install", "--disable-pip-version-check", "-q",
         "-e", PROJECT_EXTRAS, *TOOL_REQUIREMENTS, *build_system_requirements()])
    VENV_STAMP.write_text(wanted + "\n")


# ------------------------------------------------------------------------- bundle


def step_npm_ci() -> None:
    """``npm ci`` in web/, skipped while node_modules matches the lock."""
    lock = WEB / "package-lock.json"
    wanted = sha256_of((WEB / "package.json").read_bytes(), lock.read_bytes())
    if NPM_STAMP.exists() and NPM_STAMP.read_text().strip() == wanted:
        log("web/node_modules is up to date")
        return
    npm = shutil.which("npm")
    if npm is None:
        raise BuildError("npm not found: install Node.js 20+ with npm")
    log("installing JavaScript assets (npm ci)")
    run([npm, "ci", "--no-audit", "--no-fund"], cwd=WEB)
    NPM_STAMP.write_text(wanted + "\n")


def copy_js_assets() -> None:
    """Copy Pyodide's core files, socket.io and PyScript from node_modules."""
    pyodide_dir = DIST / "pyodide"
    pyodide_dir.mkdir(parents=True)
    for name in PYODIDE_CORE_FILES:
        shutil.copy2(NODE_MODULES / "pyodide" / name, pyodide_dir / name)
    (DIST / "js").mkdir()
    shutil.copy2(NODE_MODULES / "socket.io-client" / "dist" / "socket.io.min.js", DIST / "js")
    shutil.copytree(NODE_MODULES / "@pyscript" / "core" / "dist", DIST / "pyscript")


def build_project_wheel(out_dir: Path) -> Path:
    """Build our wheel from a clean copy of the sources.

    Building from a copy keeps setuptools' build/ and egg-info out of the
    work tree, and a stale build/lib can never leak deleted modules into the
    wheel. No build isolation: the venv already holds the pinned backend.
    """
    source = out_dir / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in PACKAGE_FOLDERS:
        shutil.copytree(ROOT / folder, source / folder, ignore=ignore)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, source / name)
    # cwd matters: `python -m build` run from the repo root would import this
    # file (build.py) instead of the `build` package.
    run([VENV_PYTHON, "-m", "build", "-q", "--wheel", "--no-isolation", "--outdir", out_dir, source],
        cwd=out_dir)
    wheels = sorted(out_dir.glob("shotx-*.whl"))
    if len(wheels) != 1:
        raise BuildError(f"expected one shotx wheel in {out_dir}, found {wheels}")
    return wheels[0]


def cached_wheel(pin: str) -> Path | None:
    """The cached wheel for a ``name==version`` pin, if downloaded before."""
    name, version = pin.split("==")
    stem = re.sub(r"[-_.]+", "_", name).lower()
    matches = [path for path in WHEEL_CACHE.glob("*.whl")
               if path.name.lower().startswith(f"{stem}-{version}-")]
    return matches[0] if matches else None


def pyodide_pypi_wheels() -> list[Path]:
    """The PYODIDE_WHEELS files, downloading only those not cached yet."""
    missing = [pin for pin in PYODIDE_WHEELS if cached_wheel(pin) is None]
    if missing:
        log(f"downloading {', '.join(missing)} from PyPI")
        WHEEL_CACHE.mkdir(parents=True, exist_ok=True)
        run([VENV_PYTHON, "-m", "pip", "download", "--disable-pip-version-check", "-q",
             "--no-deps", "--only-binary=:all:", "-d", WHEEL_CACHE, *missing])
    wheels = [cached_wheel(pin) for pin in PYODIDE_WHEELS]
    if None in wheels:
        raise BuildError(f"pip download did not produce all of {PYODIDE_WHEELS}")
    return [wheel for wheel in wheels if wheel is not None]


def write_pyodide_lock(wheels: list[Path]) -> None:
    """Copy the wheels next to the lock and regenerate it to list them.

    Pyodide checks each wheel against the lock's sha256 (SRI), so the npm
    lock's entries for micropip & co. must be replaced by add-wheels.
    """
    pyodide_dir = DIST / "pyodide"
    for wheel in wheels:
        shutil.copy2(wheel, pyodide_dir / wheel.name)
    run([VENV / "bin" / "pyodide", "lockfile", "add-wheels",
         "--input", NODE_MODULES / "pyodide" / LOCK_NAME,
         "--output", LOCK_NAME, "--base-path", ".",
         *(wheel.name for wheel in wheels)], cwd=pyodide_dir)
    keep_only_bundled_packages(pyodide_dir / LOCK_NAME)


def copy_web_pages() -> None:
    """Copy web/*.html (and page config or Python files) into the bundle."""
    for pattern in WEB_PAGE_PATTERNS:
        for page in sorted(WEB.glob(pattern)):
            if page.name not in WEB_PAGE_EXCLUDES:
                shutil.copy2(page, DIST / page.name)


def step_bundle() -> None:
    """Assemble web/dist from scratch, so nothing stale is ever served."""
    step_npm_ci()
    log("assembling web/dist")
    shutil.rmtree(DIST, ignore_errors=True)
    copy_js_assets()
    with tempfile.TemporaryDirectory(prefix="shotx-wheel-") as tmp:
        ours = build_project_wheel(Path(tmp))
        compiled = add_pyodide_bytecode([*pyodide_pypi_wheels(), ours], DIST / "pyodide" / "python_stdlib.zip",
                                        Path(tmp) / "compiled", NODE_MODULES / "pyodide" / "pyodide.js")
        write_pyodide_lock(compiled)
    copy_web_pages()
    log(f"bundle ready in {DIST.relative_to(ROOT)}")


# ----------------------------------------------------------------- demo and test


def step_demo(args: Sequence[str]) -> None:
    """Replace this process with the demo server, so Ctrl-C reaches it directly."""
    step_venv()
    step_bundle()
    cmd = [str(VENV_PYTHON), "-m", "shotx.server", "--host", "127.0.0.1",
           "--port", "3000", "--web", str(DIST), *args]
    log("starting the demo server on http://127.0.0.1:3000 (Ctrl-C stops it)")
    os.chdir(ROOT)
    os.execv(cmd[0], cmd)


def step_test(args: Sequence[str]) -> int:
    """Run pytest (testpaths: tests/) and return its exit code.

    pytest's code 5 (nothing collected) stays a failure: a filter or a
    broken collection that runs no test must not pass CI.
    """
    step_venv()
    step_bundle()
    log("running pytest " + " ".join(args))
    code = subprocess.run([str(VENV_PYTHON), "-m", "pytest", *args], cwd=ROOT).returncode
    if code == 5:
        print("build.py: pytest collected no tests; that counts as a failure", file=sys.stderr)
    return code


# ------------------------------------------------------------------------ main


def command_venv(args: Sequence[str]) -> int:
    """``venv``: only the virtual environment."""
    step_venv()
    return 0


def command_bundle(args: Sequence[str]) -> int:
    """``bundle``: the venv (for the wheel and lock tools), then web/dist."""
    step_venv()
    step_bundle()
    return 0


COMMANDS: dict[str, Callable[[Sequence[str]], int | None]] = {
    "venv": command_venv,
    "bundle": command_bundle,
    "demo": step_demo,
    "test": step_test,
}


def main(argv: Sequence[str]) -> int:
    """Dispatch ``argv[0]`` to its command; print usage when there is none."""
    if not argv or argv[0] not in COMMANDS:
        if argv and argv[0] not in ("-h", "--help", "help"):
            print(f"build.py: unknown command {argv[0]!r}\n", file=sys.stderr)
        print(__doc__, file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help", "help") else 2
    started = time.monotonic()
    try:
        code = COMMANDS[argv[0]](argv[1:]) or 0
    except (BuildError, BundleError) as error:
        print(f"build.py: {error}", file=sys.stderr)
        return 1
    log(f"{argv[0]} finished in {time.monotonic() - started:.1f}s (exit {code})")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
