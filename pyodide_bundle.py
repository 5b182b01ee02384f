"""The Pyodide half of the web bundle: bytecode for its Python, and a lock
that lists exactly what the bundle holds.

build.py's ``bundle`` step calls these; they are apart because they work on
Pyodide's own formats (wheels with RECORD files, the standard-library zip,
pyodide-lock.json) rather than on this project's steps.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path


class BundleError(Exception):
    """The bundle cannot be made; the message says why."""


# Compiles the bundle's Python with the bundle's own Python (Pyodide under
# Node), so the browser imports without compiling first. Installed wheels are
# imported from site-packages, where __pycache__/ files serve; the standard
# library is imported from its zip, where zipimport only reads legacy name.pyc
# files beside the sources. Our wheel gets both: the README's fastest start
# puts the wheel itself on sys.path. Its server half is not in the browser's
# wheel at all (BROWSER_LEAVES_OUT).
PYODIDE_COMPILE_JS = """
const { loadPyodide } = require(process.argv[1]);
loadPyodide().then((pyodide) => {
  pyodide.FS.mkdir("/work");
  pyodide.FS.mount(pyodide.FS.filesystems.NODEFS, { root: process.argv[2] }, "/work");
  pyodide.runPython(`
import compileall, glob, os, py_compile
mode = py_compile.PycInvalidationMode.UNCHECKED_HASH
folders = [("/work/wheels", False), ("/work/stdlib", True)]
folders += [(ours, True) for ours in glob.glob("/work/wheels/shotx-*/shotx/client")]
for folder, legacy in folders:
    if os.path.isdir(folder) and not compileall.compile_dir(
            folder, quiet=1, legacy=legacy, invalidation_mode=mode):
        raise RuntimeError("compileall failed in " + folder)
`);
}).catch((error) => { console.error(error); process.exit(1); });
"""


# Folders of our wheel that a browser never imports, left out of the bundle's copy: the
# server half was a fifth of its bytes (355 -> 284 KiB), which every first load fetched and unpacked.
BROWSER_LEAVES_OUT = ("shotx/server",)


def record_line(root: Path, path: Path) -> str:
    """One RECORD row: path, urlsafe-base64 sha256 without padding, size."""
    data = path.read_bytes()
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path.relative_to(root).as_posix()},sha256={digest},{len(data)}"


def repack_wheel(unpacked: Path, wheel: Path) -> None:
    """Zip an unpacked wheel again, its RECORD listing the files it now holds."""
    record = next(unpacked.glob("*.dist-info/RECORD"))
    files = sorted(p for p in unpacked.rglob("*") if p.is_file() and p != record)
    record.write_text("\n".join([*(record_line(unpacked, p) for p in files),
                                 f"{record.relative_to(unpacked).as_posix()},,"]) + "\n")
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in [*files, record]:
            archive.write(path, path.relative_to(unpacked).as_posix())


def repack_stdlib(unpacked: Path, archive_path: Path) -> None:
    """Zip the standard library again with bytecode in place of its sources.

    Bytecode only, as pyodide-build's ``create_zipfile(pycompile=True)``
    does: sources next to it would nearly triple the download. What is lost
    is the source line in tracebacks through standard-library frames.
    """
    with zipfile.ZipFile(archive_path, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(unpacked.rglob("*")):
            if path.is_file() and path.suffix != ".py":
                archive.write(path, path.relative_to(unpacked).as_posix())


def add_pyodide_bytecode(wheels: list[Path], stdlib: Path | None, out: Path, pyodide_js: Path) -> list[Path]:
    """Give the bundle's wheels and Pyodide's standard library Python 3.14 bytecode.

    Pyodide's npm package and PyPI's wheels ship sources only, so every
    import in the browser compiled first: with bytecode, a warm start of
    Pyodide alone went from ~3.2 s to ~1.1 s on this machine (back to back)
    and our package's import from ~30 ms to ~15 ms. The pycs are unchecked-hash,
    so nothing compares them with sources that are not there. Returns the
    compiled wheels (same names, in ``out``); the stdlib zip (if given) is
    replaced in place. The wheel for PyPI/CPython is built separately and stays
    source-only.
    """
    out.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="shotx-pyc-") as tmp:
        work = Path(tmp)
        for wheel in wheels:
            with zipfile.ZipFile(wheel) as archive:
                archive.extractall(work / "wheels" / wheel.stem)
            for folder in BROWSER_LEAVES_OUT:  # repack_wheel's RECORD then lists only what is left
                shutil.rmtree(work / "wheels" / wheel.stem / folder, ignore_errors=True)
        if stdlib is not None:
            with zipfile.ZipFile(stdlib) as archive:
                archive.extractall(work / "stdlib")
        command = ["node", "-e", PYODIDE_COMPILE_JS, str(pyodide_js), str(work)]
        print(f"    $ node -e <compile script> {pyodide_js} {work}", flush=True)
        if subprocess.run(command).returncode != 0:
            raise BundleError("compiling the bundle's Python with Pyodide under Node failed")
        for wheel in wheels:
            repack_wheel(work / "wheels" / wheel.stem, out / wheel.name)
        if stdlib is not None:
            repack_stdlib(work / "stdlib", stdlib)
    return [out / wheel.name for wheel in wheels]


def keep_only_bundled_packages(lock_path: Path) -> None:
    """Drop the lock's entries for packages the bundle does not hold.

    npm's pyodide is its core files only, yet its lock lists ~350 packages:
    loading any of them could only fail, and micropip converts the whole
    lock to Python objects on its first install, a cost every page with
    PyScript ``packages`` paid on a first visit.
    """
    lock = json.loads(lock_path.read_text())
    bundled = {name: entry for name, entry in lock["packages"].items()
               if (lock_path.parent / entry["file_name"]).is_file()}
    dangling = {name: sorted(set(entry.get("depends", [])) - set(bundled)) for name, entry in bundled.items()}
    if any(dangling.values()):
        raise BundleError(f"bundled packages depend on packages the bundle lacks: {dangling}")
    lock["packages"] = bundled
    lock_path.write_text(json.dumps(lock, indent=1, sort_keys=True) + "\n")
