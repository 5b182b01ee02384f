"""The bundle's copy of our wheel carries bytecode for Pyodide's Python, so
the browser imports our modules without compiling them."""

import zipfile


def test_bundle_wheel_has_314_bytecode_for_every_module(bundle_dir):
    wheel = next((bundle_dir / "pyodide").glob("shotx-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        record = archive.read(next(n for n in names if n.endswith(".dist-info/RECORD"))).decode()
    sources = [n for n in names if n.endswith(".py")]
    assert sources, names
    for source in sources:
        folder, _, module = source.rpartition("/")
        compiled = f"{folder}/__pycache__/{module[:-3]}.cpython-314.pyc"
        assert compiled in names, compiled
        assert f"{compiled},sha256=" in record
