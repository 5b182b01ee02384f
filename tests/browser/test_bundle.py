"""The bundle's Python carries bytecode for Pyodide's Python, so the browser
imports without compiling: our wheel, the PyPI wheels in the lock, and the
standard library zip."""

import json
import zipfile


def wheel_bytecode_gaps(wheel):
    """Sources of ``wheel`` lacking a 3.14 pyc, or a pyc missing from RECORD
    (our server, which never runs in a browser, must not be in it at all)."""
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        record = archive.read(next(n for n in names if n.endswith(".dist-info/RECORD"))).decode()
    sources = [n for n in names if n.endswith(".py")]
    assert sources, names
    gaps = []
    for source in sources:
        folder, _, module = source.rpartition("/")
        compiled = f"{folder}/__pycache__/{module[:-3]}.cpython-314.pyc".lstrip("/")
        if source.startswith("shotx/server/") or not (compiled in names and f"{compiled},sha256=" in record):
            gaps.append(source)
    return gaps


def test_every_bundled_wheel_has_314_bytecode_for_every_module(bundle_dir):
    wheels = sorted((bundle_dir / "pyodide").glob("*.whl"))
    assert {w.name.split("-")[0] for w in wheels} >= {"shotx", "micropip", "packaging"}
    assert {w.name: wheel_bytecode_gaps(w) for w in wheels} == {w.name: [] for w in wheels}


def test_lock_hashes_are_those_of_the_compiled_wheels(bundle_dir):
    import hashlib

    lock = json.loads((bundle_dir / "pyodide" / "pyodide-lock.json").read_text())
    for wheel in (bundle_dir / "pyodide").glob("*.whl"):
        entry = next(p for p in lock["packages"].values() if p["file_name"] == wheel.name)
        assert entry["sha256"] == hashlib.sha256(wheel.read_bytes()).hexdigest(), wheel.name


def test_stdlib_zip_holds_legacy_bytecode_in_place_of_sources(bundle_dir):
    with zipfile.ZipFile(bundle_dir / "pyodide" / "python_stdlib.zip") as archive:
        names = set(archive.namelist())
    compiled = {n for n in names if n.endswith(".pyc")}
    assert len(compiled) > 500 and "asyncio/__init__.pyc" in compiled and "json/decoder.pyc" in compiled
    assert not [n for n in names if n.endswith(".py")]
    assert not [n for n in compiled if "__pycache__" in n]  # zipimport only finds name.pyc


def test_our_client_can_be_imported_from_the_wheel_file_without_compiling(bundle_dir):
    """zipimport (the README's fastest start puts the wheel on sys.path) reads only name.pyc beside name.py."""
    wheel = next((bundle_dir / "pyodide").glob("shotx-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    client = [n for n in names if n.startswith("shotx/client/") and n.endswith(".py")]
    assert len(client) > 10
    assert [n for n in client if n + "c" not in names] == []


def test_the_lock_lists_only_what_the_bundle_holds(bundle_dir):
    """npm's pyodide lists ~350 packages it does not ship; ours lists what can really load."""
    lock = json.loads((bundle_dir / "pyodide" / "pyodide-lock.json").read_text())
    listed = {name: entry["file_name"] for name, entry in lock["packages"].items()}
    assert {"shotx", "micropip", "packaging"} <= set(listed)
    assert [f for f in listed.values() if not (bundle_dir / "pyodide" / f).is_file()] == []
    assert sorted(listed.values()) == sorted(p.name for p in (bundle_dir / "pyodide").glob("*.whl"))
