"""bench/browser.py's ground: the machine's facts, the site it serves and the demo server.

The served site is a temporary copy of web/dist (with our wheel rebuilt from the
work tree unless told otherwise), so neither a stale bundle nor a rebuild during
the run decides what is measured."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import importlib.util
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
DIST = ROOT / "web" / "dist"
START_PAGE = BENCH / "browser-start.html"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


# ---------------------------------------------------------------- the machine


def proc_stat_cpu() -> list[int]:
    """The aggregate ``cpu`` line of /proc/stat (user nice system idle iowait irq softirq steal)."""
    return [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]


def steal_share(before: list[int], after: list[int]) -> float:
    """Fraction of CPU time the hypervisor took from us between two samples."""
    delta = [b - a for a, b in zip(before, after)]
    return delta[7] / max(1, sum(delta))


def cpu_model() -> str:
    """The first ``model name`` of /proc/cpuinfo."""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of a process: the demo server's share of a flush."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def git_state() -> str:
    """Commit and whether the work tree differs: results belong to a version."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = " + uncommitted changes" if git("status", "--porcelain", "--", "browser_client", "web") else ""
    return f"{git('rev-parse', '--short', 'HEAD')}{dirty}"


# ------------------------------------------------------------ site and server


def stale_wheel_files(wheel: Path) -> list[str]:
    """Client modules whose source differs from the wheel's copy (or is in only one).

    The bundle is built by hand (``python3 build.py bundle``); a report must
    say when it measured an older client than the work tree holds.
    """
    with zipfile.ZipFile(wheel) as archive:
        packed = {Path(name).name: archive.read(name) for name in archive.namelist()
                  if name.startswith("shotx/client/") and name.endswith(".py")}
    current = {path.name: path.read_bytes() for path in (ROOT / "browser_client").glob("*.py")}
    return sorted(name for name in packed.keys() | current.keys() if packed.get(name) != current.get(name))


def passthrough_page(index_html: str) -> str | None:
    """The demo page with ``packages_cache: "passthrough"``, or None if its config moved."""
    old = '"packages": ["shotx"]}'
    if old not in index_html:
        return None
    return index_html.replace(old, '"packages": ["shotx"], "packages_cache": "passthrough"}', 1)


def fresh_wheel(out_dir: Path) -> Path:
    """Our wheel built now from the work tree, with build.py's own recipe (bytecode included).

    build.py is loaded under another name: ``import build`` is the PyPA
    builder it calls.
    """
    if str(ROOT) not in sys.path:  # build.py imports pyodide_bundle.py from beside it
        sys.path.insert(0, str(ROOT))
    spec = importlib.util.spec_from_file_location("shotx_build_script", ROOT / "build.py")
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    wheel = script.build_project_wheel(out_dir)
    pyodide_js = script.NODE_MODULES / "pyodide" / "pyodide.js"
    return Path(script.add_pyodide_bytecode([wheel], None, out_dir / "compiled", pyodide_js)[0])


def swap_wheel(site: Path, wheel: Path) -> str:
    """Serve ``wheel`` as shotx in the copied bundle: file and lock entry (name, sha256 for SRI)."""
    lock_path = site / "pyodide" / "pyodide-lock.json"
    lock = json.loads(lock_path.read_text())
    entry = lock["packages"]["shotx"]
    (site / "pyodide" / entry["file_name"]).unlink(missing_ok=True)
    shutil.copy2(wheel, site / "pyodide" / wheel.name)
    entry.update(file_name=wheel.name, sha256=hashlib.sha256(wheel.read_bytes()).hexdigest())
    lock_path.write_text(json.dumps(lock))
    return wheel.name


def prepare_site(folder: Path, work_tree_wheel: bool) -> dict[str, Any]:
    """Copy web/dist (mtimes kept, so caching behaves as served) and add our pages.

    With ``work_tree_wheel`` our wheel is rebuilt from the sources first, so
    a bundle built before the last edit cannot be what gets measured.
    """
    if not (DIST / "pyodide" / "pyodide-lock.json").is_file() or not (DIST / "index.html").is_file():
        sys.exit(f"{DIST} is missing or incomplete: run `python3 build.py bundle` first")
    site = folder / "site"
    shutil.copytree(DIST, site)
    (site / "bench").mkdir()
    shutil.copy2(START_PAGE, site / "bench" / START_PAGE.name)
    variant = passthrough_page((site / "index.html").read_text())
    if variant is not None:
        (site / "index-passthrough.html").write_text(variant)
    lock = json.loads((site / "pyodide" / "pyodide-lock.json").read_text())
    wheel = lock["packages"]["shotx"]["file_name"]
    if work_tree_wheel:
        print("==> building our wheel from the work tree", flush=True)
        wheel = swap_wheel(site, fresh_wheel(folder / "wheel"))
    return {"site": site, "passthrough": variant is not None, **wheel_facts(site / "pyodide" / wheel, work_tree_wheel)}


def wheel_facts(wheel: Path, work_tree_wheel: bool) -> dict[str, Any]:
    """What the report says about the measured wheel: name, size, hash, age, staleness."""
    stale = stale_wheel_files(wheel)
    if stale:
        print(f"==> note: the measured wheel differs from browser_client/ in {', '.join(stale)}", flush=True)
    built = dt.datetime.fromtimestamp(wheel.stat().st_mtime).astimezone().strftime("%H:%M %Z")
    return {"wheel": wheel.name, "wheel_bytes": wheel.stat().st_size, "stale": stale,
            "wheel_sha256": hashlib.sha256(wheel.read_bytes()).hexdigest()[:12],
            "wheel_built": f"built {built} from the work tree" if work_tree_wheel else f"web/dist's, built {built}"}


def die_with_parent() -> None:
    """In the child: SIGTERM when the benchmark dies, even by SIGKILL (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@contextlib.contextmanager
def demo_server(site: Path, store: Path) -> Iterator[tuple[str, int]]:
    """``python -m shotx.server`` on a free loopback port; yields (url, pid), always stopped."""
    command = [sys.executable, "-m", "shotx.server", "--host", "127.0.0.1", "--port", "0",
               "--store", str(store), "--web", str(site), "--interval", "0"]
    process = subprocess.Popen(command, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, preexec_fn=die_with_parent)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r"listening on (http://\S+)", line)
        if match is None:
            raise RuntimeError(f"demo server said {line!r} (exit {process.poll()})")
        yield match.group(1), process.pid
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def handled_texts(base: str, prefix: str) -> list[str]:
    """What the server's test_route ran with, for one run's prefix, in order."""
    with urllib.request.urlopen(f"{base}/demo/handled", timeout=10) as response:
        handled = json.load(response)
    return [d["text"] for d in handled if isinstance(d, dict) and str(d.get("text", "")).startswith(prefix)]
