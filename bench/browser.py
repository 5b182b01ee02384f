#!/usr/bin/env python3
"""Shotx in real Chromium: ``.venv/bin/python bench/browser.py [--quick]``.

Measures, on this machine, what issue 3's "Speed" section asks for:

1. navigation to ``connected`` for the PyScript demo page (web/index.html),
   cold (Chromium on a fresh profile: empty HTTP and wasm code caches,
   IndexedDB) and warm (a reload in the same browser); next to it the same
   page with PyScript's ``packages_cache: "passthrough"`` (a proposal);
2. what our wheel adds to Pyodide's own start-up: bench/browser-start.html
   with ``loadPyodide`` only, against the same plus our package loaded,
   ``shotx.client`` imported and an ``SxClient`` made (three ways of
   loading), and a cProfile of that load saying where the time goes;
3. the flush of 1,000 queued messages after a reload, until ``#queued`` is 0
   and the server has run every handler once, in order;
4. a queued send's cost: ``shotx_send_many(1000)`` page time per send, and
   the main thread's share of it (Chrome DevTools Protocol ``Performance``
   metrics around the call, long tasks from a ``PerformanceObserver``).

Why it is built this way: the machine has 2 shared, noisy cores, so every
figure is repeated (``--rounds``, 5 by default), the variants being compared
alternate within a round, and the report gives medians and same-round
ratios. The demo server serves a temporary copy of web/dist with our wheel
rebuilt from the work tree (``--dist-wheel`` keeps the bundle's), so neither
a stale bundle nor a rebuild during the run decides what is measured.
Loopback only; the server, every Chromium and the temporary folder are gone
at the end, also on Ctrl-C, SIGTERM or an error. It prints a Markdown report
and writes it to ``bench/results-browser.md``.
"""

from __future__ import annotations

import argparse
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
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
DIST = ROOT / "web" / "dist"
START_PAGE = BENCH / "browser-start.html"
RESULTS = BENCH / "results-browser.md"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# The machine's network is closed: without these Chromium keeps calling Google.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
LOAD_TIMEOUT_MS = 90_000  # a cold Pyodide start on a loaded 2-core machine
FLUSH_TIMEOUT_MS = 60_000
FLUSH_COUNT = 1000
MAX_FAILURES = 5  # crashed or timed-out measurements before the run gives up
POLL_MS = 50  # polling our own marks; the times themselves are taken in the page
TARGETS = {"wheel_ms": 150.0, "flush_ms": 2000.0, "send_ms": 5.0}


def use_project_python() -> None:
    """Re-run under .venv (``python3 build.py venv``), where Playwright and shotx are."""
    if VENV_PYTHON.exists() and Path(sys.prefix).resolve() != VENV_PYTHON.parent.parent.resolve():
        os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), str(Path(__file__).resolve()), *sys.argv[1:]])


use_project_python()

from playwright.sync_api import BrowserContext, CDPSession, Page, Playwright, Request, sync_playwright  # noqa: E402
from playwright.sync_api import Error as PlaywrightError  # noqa: E402

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
    spec = importlib.util.spec_from_file_location("shotx_build_script", ROOT / "build.py")
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    wheel = script.build_project_wheel(out_dir)
    return Path(script.add_pyodide_bytecode([wheel], None, out_dir / "compiled")[0])


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


# ------------------------------------------------------------------- browser


class Chromium:
    """Launches the system Chromium with a fresh profile for each measurement.

    A persistent profile, not ``browser.new_context()``: Playwright's extra
    contexts are off-the-record, and their in-memory HTTP cache does not keep
    the 9.6 MB pyodide.asm.wasm, so their "warm" reload downloads and compiles
    it again, which no real visitor's browser (disk cache, wasm code cache) does.
    """

    def __init__(self, playwright: Playwright, root: Path) -> None:
        self.playwright, self.root = playwright, root
        self.version = ""
        self.offsite: list[str] = []  # requests to anything but this machine: must stay empty

    @contextlib.contextmanager
    def fresh(self, init_script: str | None = None) -> Iterator[tuple[BrowserContext, Page]]:
        """A new Chromium on an empty profile (cold), closed and deleted afterwards."""
        profile = Path(tempfile.mkdtemp(prefix="profile-", dir=self.root))
        context = self.playwright.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            self.version = self.version or (context.browser.version if context.browser else "?")
            context.on("request", self._watch)
            if init_script:
                context.add_init_script(init_script)
            yield context, context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()
            shutil.rmtree(profile, ignore_errors=True)

    def _watch(self, request: Request) -> None:
        """Note a request that leaves the machine (only watched: routing would slow every load)."""
        host = urlsplit(request.url).hostname or ""
        if request.url.startswith(("http:", "https:", "ws:", "wss:")) and host not in ("127.0.0.1", "localhost"):
            self.offsite.append(request.url)


def attempt(failures: list[str], what: str, measure: Callable[[], Any]) -> Any:
    """One measurement; a crash or timeout is recorded and the run goes on without it.

    Chromium's renderer has crashed now and then on this loaded machine; one
    lost sample must not throw away the others.
    """
    try:
        return measure()
    except (PlaywrightError, RuntimeError) as error:
        failures.append(f"{what}: {str(error).splitlines()[0][:160]}")
        print(f"    ! {failures[-1]}", flush=True)
        return None


def wait_for(page: Page, predicate: str, timeout: float = LOAD_TIMEOUT_MS) -> None:
    """Wait for a page expression; raise with the page's error text if it failed."""
    page.wait_for_function(f"({predicate}) || window.benchError", timeout=timeout, polling=POLL_MS)
    error = page.evaluate("window.benchError")
    if error:
        raise RuntimeError(f"{page.url}: {error}")


def page_marks(page: Page) -> dict[str, float]:
    """window.marks: ms since navigation start."""
    return {name: float(value) for name, value in page.evaluate("window.marks").items()}


TRANSFERRED = """() => [performance.getEntriesByType("navigation"), performance.getEntriesByType("resource")]
  .flat().reduce((sum, entry) => sum + (entry.transferSize || 0), 0)"""


def measured_load(page: Page, load: Callable[[], Any], ready: str) -> dict[str, Any]:
    """Run a navigation, wait for the ``ready`` mark; marks and bytes over the network."""
    load()
    wait_for(page, f"window.marks && window.marks[{json.dumps(ready)}]")
    return {"marks": page_marks(page), "bytes": page.evaluate(TRANSFERRED)}


# ------------------------------------------------ 1. PyScript page to connected


def pyscript_load(chromium: Chromium, base: str, page_name: str, round_no: int) -> dict[str, Any]:
    """One cold load and one warm reload of a demo page variant, to ``connected``."""
    with chromium.fresh() as (context, page):
        url = f"{base}/{page_name}?db=bench-nav-{round_no}&room=bench-nav"
        cold = measured_load(page, lambda: page.goto(url, wait_until="commit"), "connected")
        warm = measured_load(page, lambda: page.reload(wait_until="commit"), "connected")
        return {"page": page_name, "cold": cold, "warm": warm}


def nav_round(chromium: Chromium, base: str, pages: list[str], round_no: int,
              failures: list[str]) -> list[dict[str, Any]]:
    """Every page variant once, in an order that alternates from round to round."""
    order = pages if round_no % 2 == 0 else pages[::-1]
    runs = [attempt(failures, f"round {round_no + 1} {name}", partial(pyscript_load, chromium, base, name, round_no))
            for name in order]
    return [run for run in runs if run is not None]


# ------------------------------------------------- 2. what our wheel adds


def start_load(chromium: Chromium, base: str, variant: str, warm: bool) -> dict[str, Any]:
    """bench/browser-start.html cold, and warm (reloaded) if asked."""
    ready = "pyodide-ready" if variant == "pyodide" else "client-ready"
    with chromium.fresh() as (context, page):
        url = f"{base}/bench/browser-start.html?variant={variant}"
        result: dict[str, Any] = {"variant": variant}
        result["cold"] = measured_load(page, lambda: page.goto(url, wait_until="commit"), ready)
        result["cold"]["bench"] = page.evaluate("window.bench")
        if warm:
            result["warm"] = measured_load(page, lambda: page.reload(wait_until="commit"), ready)
            result["warm"]["bench"] = page.evaluate("window.bench")
        return result


START_VARIANTS = {"pyodide": True, "shotx": True, "zipimport": True, "micropip": False}  # name: warm too?


def start_round(chromium: Chromium, base: str, round_no: int,
                failures: list[str]) -> list[dict[str, Any]]:
    """Every start-up variant once, the order rotated each round."""
    names = list(START_VARIANTS)
    shift = round_no % len(names)
    runs = [attempt(failures, f"round {round_no + 1} start {name}",
                    partial(start_load, chromium, base, name, START_VARIANTS[name]))
            for name in names[shift:] + names[:shift]]
    return [run for run in runs if run is not None]


def start_profile(chromium: Chromium, base: str) -> dict[str, Any]:
    """cProfile of one cold package load + import + SxClient: where the added ms go."""
    with chromium.fresh() as (context, page):
        url = f"{base}/bench/browser-start.html?variant=shotx&profile=1"
        measured_load(page, lambda: page.goto(url, wait_until="commit"), "done")
        summary = dict(page.evaluate("window.bench.profile"))
    lines = (line.rstrip() for line in summary["text"].splitlines())
    summary["text"] = "\n".join(line for line in lines if line and not line.lstrip().startswith("List reduced"))
    return summary


# ------------------------------------------- 3 and 4. flush and queued sends

# In every document of the flush context: when #queued first dropped below its
# peak (the first ack) and when it reached 0, plus the page's long tasks.
FLUSH_PROBE = """(() => {
  const bench = window.benchFlush = { longTasks: [], peak: 0 };
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) bench.longTasks.push([entry.startTime, entry.duration]);
  }).observe({ type: "longtask", buffered: true });
  document.addEventListener("DOMContentLoaded", () => {
    const queued = document.getElementById("queued");
    if (!queued) return;
    new MutationObserver(() => {
      const now = performance.now(), value = Number(queued.textContent);
      if (value > bench.peak) bench.peak = value;
      else if (value < bench.peak) bench.firstAck ??= now;
      if (value === 0 && bench.peak > 0) bench.flushed ??= now;
    }).observe(queued, { childList: true, characterData: true, subtree: true });
  });
})();"""

CLICK_ONLINE = "() => { const t = performance.now(); document.getElementById('online').click(); return t; }"
SEND_MANY = "async ([n, prefix]) => await shotx_send_many(n, prefix)"
LONG_TASKS_SINCE = "(t) => window.benchFlush.longTasks.filter(([start]) => start >= t)"


def main_thread_metrics(cdp: CDPSession) -> dict[str, float]:
    """Renderer main-thread totals: TaskDuration (busy, wall s) and ThreadTime (CPU s)."""
    metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    return {"busy": metrics.get("TaskDuration", 0.0), "cpu": metrics.get("ThreadTime", 0.0)}


def status_is(page: Page, text: str, timeout: float = LOAD_TIMEOUT_MS) -> None:
    """Wait for the page's #status text."""
    wait_for(page, f"document.getElementById('status')?.textContent === {json.dumps(text)}", timeout)


def queued_is(page: Page, count: int, timeout: float = LOAD_TIMEOUT_MS) -> None:
    """Wait for the page's #queued counter."""
    wait_for(page, f"document.getElementById('queued')?.textContent === '{count}'", timeout)


def queue_offline(page: Page, cdp: CDPSession, prefix: str) -> dict[str, Any]:
    """Go offline and queue FLUSH_COUNT sends: page ms, main-thread busy and CPU s, long tasks."""
    page.click("#offline")
    status_is(page, "offline")
    since = page.evaluate("performance.now()")
    before = main_thread_metrics(cdp)
    page_ms = float(page.evaluate(SEND_MANY, [FLUSH_COUNT, prefix]))
    after = main_thread_metrics(cdp)
    long_tasks = page.evaluate(LONG_TASKS_SINCE, since)
    queued_is(page, FLUSH_COUNT)
    return {"n": FLUSH_COUNT, "page_ms": page_ms, "busy_ms": (after["busy"] - before["busy"]) * 1000,
            "cpu_ms": (after["cpu"] - before["cpu"]) * 1000, "long_tasks": long_tasks}


def reload_and_flush(page: Page, cdp: CDPSession, db: str, how: str) -> dict[str, float]:
    """Reload with the outbox full; flush by clicking #online, or by reloading while online.

    Times are page ms: from the click (or navigation start) to ``connected``,
    to the first ack and to ``#queued`` showing 0. After a click, also the
    main thread's busy and CPU ms until 0 (a reload's would include the load).
    """
    if how == "reload-online":
        page.evaluate("(key) => sessionStorage.removeItem(key)", f"shotx-offline:{db}")
    page.reload(wait_until="commit")
    start, before = 0.0, None
    if how == "click-online":
        wait_for(page, "window.marks['page-ready']")
        queued_is(page, FLUSH_COUNT)
        before = main_thread_metrics(cdp)
        start = float(page.evaluate(CLICK_ONLINE))
    wait_for(page, "window.benchFlush.flushed", FLUSH_TIMEOUT_MS)
    after = main_thread_metrics(cdp)
    probe = page.evaluate("window.benchFlush")
    connected = page_marks(page)["connected"]
    main_thread = {} if before is None else {
        "busy_ms": (after["busy"] - before["busy"]) * 1000, "cpu_ms": (after["cpu"] - before["cpu"]) * 1000}
    return {"start": start, "connected_ms": connected - start, "first_ack_ms": probe["firstAck"] - start,
            "flush_ms": probe["flushed"] - start, "from_connected_ms": probe["flushed"] - connected,
            "long_tasks": len(page.evaluate(LONG_TASKS_SINCE, connected)), **main_thread}


def flush_run(page: Page, cdp: CDPSession, server: tuple[str, int], db: str, how: str,
              run_no: int) -> dict[str, Any]:
    """One queue-offline, reload, flush cycle; checks the server ran all, once, in order."""
    base, server_pid = server
    prefix = f"r{run_no}{how[0]}-"
    queued = queue_offline(page, cdp, prefix)
    cpu_before = process_cpu_seconds(server_pid)
    flushed = reload_and_flush(page, cdp, db, how)
    server_cpu = process_cpu_seconds(server_pid) - cpu_before
    deadline = time.monotonic() + 10
    while (done := handled_texts(base, prefix)) != (wanted := [f"{prefix}{i}" for i in range(FLUSH_COUNT)]):
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    return {"how": how, "queue": queued, **flushed, "server_cpu_ms": server_cpu * 1000,
            "exactly_once_in_order": done == wanted}


def flush_round(page: Page, cdp: CDPSession, server: tuple[str, int], db: str,
                round_no: int) -> list[dict[str, Any]]:
    """One flush; the start alternates between a click on Online and a reload while online."""
    how = ("click-online", "reload-online")[round_no % 2]
    run = flush_run(page, cdp, server, db, how, round_no)
    print(f"    round {round_no + 1}: flush after {how} {run['flush_ms']:.0f} ms "
          f"({run['from_connected_ms']:.0f} from connected), sends {run['queue']['page_ms'] / FLUSH_COUNT:.2f} ms each",
          flush=True)
    return [run]


def flush_session(chromium: Chromium, server: tuple[str, int], pending: list[int],
                  done: list[dict[str, Any]]) -> None:
    """Open the demo page once, then run the pending rounds on it (each taken off first)."""
    db = "bench-flush"
    with chromium.fresh(FLUSH_PROBE) as (context, page):
        cdp = context.new_cdp_session(page)
        cdp.send("Performance.enable")
        page.goto(f"{server[0]}/?db={db}&room=bench-flush", wait_until="commit")
        status_is(page, "connected")
        while pending:
            done += flush_round(page, cdp, server, db, pending.pop(0))


def flush_runs(chromium: Chromium, server: tuple[str, int], rounds: int, failures: list[str]) -> list[dict[str, Any]]:
    """All flush rounds; after a crash the remaining rounds go on in a new browser."""
    done: list[dict[str, Any]] = []
    pending = list(range(rounds))
    while pending and len(failures) < MAX_FAILURES:
        attempt(failures, "flush", lambda: flush_session(chromium, server, pending, done))
    return done


# ------------------------------------------------------------------- figures


def med(values: list[float]) -> float:
    """Median; NaN for no value (a variant that failed every time)."""
    return statistics.median(values) if values else float("nan")


def cell(values: list[float], unit: str = "", digits: int = 0) -> str:
    """``median (min–max)``: the spread says how far to trust the median here."""
    if not values:
        return "–"
    fmt = f"{{:.{digits}f}}"
    if len(values) == 1:
        return fmt.format(values[0]) + unit
    return f"{fmt.format(med(values))}{unit} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def verdict(value: float, target: float) -> str:
    """Met or missed, with the target, for the summary table."""
    if value != value:  # NaN
        return "not measured"
    return f"{'met' if value < target else '**missed**'} (< {target:g})"


def end_mark(variant: str) -> str:
    """The start page's finishing mark for a variant."""
    return "pyodide-ready" if variant == "pyodide" else "client-ready"


def start_figures(runs: list[dict[str, Any]], variant: str, phase: str) -> dict[str, list[float]]:
    """Per-run figures of one start-up variant, cold or warm, from the page's marks."""
    out: dict[str, list[float]] = {k: [] for k in ("ready", "adds", "load", "import", "compile", "micropip")}
    for run in runs:
        if run["variant"] != variant or phase not in run:
            continue
        marks, bench = run[phase]["marks"], run[phase]["bench"]
        out["ready"].append(marks[end_mark(variant)])
        if variant == "pyodide":
            continue
        out["adds"].append(marks["client-ready"] - marks["pyodide-ready"])
        out["load"].append(marks["package-loaded"] - marks["pyodide-ready"])
        out["import"].append(bench["import_ms"])
        out["compile"].append(bench["compile_ours_ms"])
        if "micropip-loaded" in marks:
            out["micropip"].append(marks["micropip-loaded"] - marks["pyodide-ready"])
    return out


def same_round_delta(rounds: list[list[dict[str, Any]]], variant: str, phase: str) -> list[float]:
    """Per round: the variant's finishing time minus the bare Pyodide one's (same round)."""
    deltas = []
    for runs in rounds:
        by_name = {run["variant"]: run for run in runs}
        if phase in by_name.get(variant, {}) and phase in by_name.get("pyodide", {}):
            deltas.append(by_name[variant][phase]["marks"][end_mark(variant)]
                          - by_name["pyodide"][phase]["marks"]["pyodide-ready"])
    return deltas


def nav_figures(rounds: list[list[dict[str, Any]]], page_name: str, phase: str) -> dict[str, list[float]]:
    """Per-run figures of one demo page variant, cold or warm."""
    runs = [run for runs in rounds for run in runs if run["page"] == page_name]
    return {"connected": [r[phase]["marks"]["connected"] for r in runs],
            "python": [r[phase]["marks"]["python-ready"] for r in runs],
            "kib": [r[phase]["bytes"] / 1024 for r in runs]}


def nav_ratio(rounds: list[list[dict[str, Any]]], page_name: str, phase: str) -> list[float]:
    """Per round: a page variant's time to connected over the shipped page's."""
    ratios = []
    for runs in rounds:
        by_name = {run["page"]: run for run in runs}
        if page_name in by_name and "index.html" in by_name:
            ratios.append(by_name[page_name][phase]["marks"]["connected"]
                          / by_name["index.html"][phase]["marks"]["connected"])
    return ratios


# -------------------------------------------------------------------- report


def render_header(info: dict[str, Any]) -> list[str]:
    """Where and when: the figures mean nothing without the machine and versions."""
    return [
        "# Shotx in the browser: benchmark results", "",
        f"Written by `{info['command']}` on {info['date']}, {info['rounds']} round(s), "
        f"{info['minutes']:.1f} min.", "",
        f"* Machine: {info['nproc']} CPUs ({info['cpu']}), {platform.system()} {platform.release()}; "
        f"load average {info['load_start']} at the start, {info['load_end']} at the end; "
        f"CPU steal {info['steal']:.1%} during the run.",
        f"* Chromium {info['chromium']} (headless, `{CHROMIUM}`), Pyodide {info['pyodide']}, "
        f"PyScript {info['pyscript']}, socket.io-client {info['socketio']}.",
        f"* Our wheel `{info['wheel']}` ({info['wheel_bytes'] / 1024:.0f} KiB, sha256 {info['wheel_sha256']}…), "
        f"{info['wheel_built']}; work tree at {info['git']}; "
        + (f"**the wheel is older than browser_client/** ({', '.join(info['stale'])} differ)."
           if info["stale"] else "the wheel's client modules match browser_client/."),
        f"* Requests that left 127.0.0.1: {', '.join(info['offsite']) if info['offsite'] else 'none'}.",
        "* Times are ms from navigation start (or from the click), taken in the page. Cells read "
        "`median (min–max)` over the runs. Cold: Chromium on a fresh profile (empty HTTP and wasm code "
        "caches, IndexedDB and PyScript's package cache); warm: a reload in the same browser.", "",
    ]


def render_summary(nav: list[list[dict[str, Any]]], starts: list[list[dict[str, Any]]],
                   flushes: list[dict[str, Any]]) -> list[str]:
    """The four figures of issue 3 against their targets."""
    runs = [run for runs in starts for run in runs]
    cold, warm = start_figures(runs, "shotx", "cold"), start_figures(runs, "shotx", "warm")
    zip_cold, zip_warm = start_figures(runs, "zipimport", "cold"), start_figures(runs, "zipimport", "warm")
    micropip = start_figures(runs, "micropip", "cold")
    click = [f for f in flushes if f["how"] == "click-online"]
    sends = [f["queue"]["page_ms"] / f["queue"]["n"] for f in flushes]
    cpu = [f["queue"]["cpu_ms"] / f["queue"]["n"] for f in flushes]
    shipped = {phase: nav_figures(nav, "index.html", phase)["connected"] for phase in ("cold", "warm")}
    flush_ok = all(f["exactly_once_in_order"] for f in flushes)
    return [
        "## Summary", "",
        "| figure | median (min–max) | target |", "|---|---|---|",
        f"| demo page: navigation → `connected`, cold | {cell(shipped['cold'], ' ms')} | – |",
        f"| demo page: navigation → `connected`, warm | {cell(shipped['warm'], ' ms')} | – |",
        f"| our wheel on top of Pyodide's start-up (loadPackage + import + SxClient), cold | "
        f"{cell(cold['adds'], ' ms')} | {verdict(med(cold['adds']), TARGETS['wheel_ms'])} |",
        f"| the same, warm | {cell(warm['adds'], ' ms')} | {verdict(med(warm['adds']), TARGETS['wheel_ms'])} |",
        f"| our wheel, fetched during boot and imported from the file (README's fastest start), cold | "
        f"{cell(zip_cold['adds'], ' ms')} | {verdict(med(zip_cold['adds']), TARGETS['wheel_ms'])} |",
        f"| the same, warm | {cell(zip_warm['adds'], ' ms')} | {verdict(med(zip_warm['adds']), TARGETS['wheel_ms'])} |",
        f"| our wheel through micropip (PyScript's `packages` on a first visit; micropip's own load "
        f"included), cold | {cell(micropip['adds'], ' ms')} | {verdict(med(micropip['adds']), TARGETS['wheel_ms'])} |",
        f"| flush 1,000 queued after a reload: click on Online → `#queued` 0 | "
        f"{cell([f['flush_ms'] for f in click], ' ms')} | "
        f"{verdict(med([f['flush_ms'] for f in click]), TARGETS['flush_ms'])} |",
        f"| the same, from the `connected` mark | {cell([f['from_connected_ms'] for f in flushes], ' ms')} | "
        f"{verdict(med([f['from_connected_ms'] for f in flushes]), TARGETS['flush_ms'])} |",
        f"| server ran every flushed handler once, in order | {'yes' if flush_ok else '**no**'} "
        f"({len(flushes)} flushes) | must |",
        f"| a queued send (persisted to IndexedDB), page time | {cell(sends, ' ms', 2)} | "
        f"{verdict(med(sends), TARGETS['send_ms'])} |",
        f"| of which main-thread CPU | {cell(cpu, ' ms', 2)} | – |", "",
    ]


def render_nav(nav: list[list[dict[str, Any]]]) -> list[str]:
    """Section 1: the demo page, as shipped and with the passthrough proposal."""
    lines = ["## 1. Demo page (web/index.html): navigation → `connected`", "",
             "| page | phase | → `connected` ms | → `python-ready` ms | KiB over the network | "
             "ratio to shipped (same round) |", "|---|---|---|---|---|---|"]
    names = sorted({run["page"] for runs in nav for run in runs}, key=lambda n: n != "index.html")
    for name in names:
        for phase in ("cold", "warm"):
            fig = nav_figures(nav, name, phase)
            ratio = "1" if name == "index.html" else cell(nav_ratio(nav, name, phase), "", 2)
            lines.append(f"| `{name}` | {phase} | {cell(fig['connected'])} | {cell(fig['python'])} | "
                         f"{cell(fig['kib'])} | {ratio} |")
    lines += ["", "`index-passthrough.html` is the shipped page with `\"packages_cache\": \"passthrough\"` added "
              "to its config (PyScript then hands `packages` to Pyodide's `loadPackage` instead of installing "
              "them with micropip on a first visit). `connected` is marked by the page's 50 ms status loop, "
              "so it is up to 50 ms late.", ""]
    return lines


START_LABELS = {
    "pyodide": "`loadPyodide` only (baseline)",
    "shotx": "+ `loadPackage([\"shotx\"])`, import, `SxClient(...)`",
    "micropip": "+ `loadPackage([\"micropip\"])`, `micropip.install(\"shotx\")`, import, `SxClient(...)`",
    "zipimport": "+ wheel (name from the lock) fetched during boot, on `sys.path` as a zip, import, "
                 "`SxClient(...)` (the README's fastest start)",
}


def render_start(starts: list[list[dict[str, Any]]]) -> list[str]:
    """Section 2: Pyodide's start-up with and without our package."""
    runs = [run for runs in starts for run in runs]
    lines = ["## 2. What our wheel adds to Pyodide's start-up (bench/browser-start.html)", "",
             "| variant | phase | ready ms | adds, in page (from `pyodide-ready`) | adds, vs baseline (same round) | "
             "package load | import | compiling our sources (what the .pyc saves) |", "|---|---|---|---|---|---|---|---|"]
    for variant, label in START_LABELS.items():
        for phase in ("cold", "warm"):
            fig = start_figures(runs, variant, phase)
            if not fig["ready"]:
                continue
            delta = "–" if variant == "pyodide" else cell(same_round_delta(starts, variant, phase))
            lines.append(f"| {label} | {phase} | {cell(fig['ready'])} | {cell(fig['adds'])} | {delta} | "
                         f"{cell(fig['load'])} | {cell(fig['import'])} | {cell(fig['compile'])} |")
    micropip = start_figures(runs, "micropip", "cold")["micropip"]
    stdlib = next((r["cold"]["bench"].get("stdlib_added") for r in runs if r["variant"] == "shotx"), None)
    lines += ["", f"\"adds, in page\" is the precise figure (one page, one clock); \"vs baseline\" subtracts "
              f"two pages' times and carries their noise. Package load with micropip includes loading "
              f"micropip itself: {cell(micropip, ' ms')}. Standard-library modules our import added beyond "
              f"Pyodide's start-up: {', '.join(stdlib) if stdlib else 'none'}.", ""]
    return lines


def column(runs: list[dict[str, Any]], key: str, per: str | None = None) -> list[float]:
    """One figure from every run that has it, optionally divided by another."""
    return [run[key] / (run[per] if per else 1) for run in runs if key in run]


FLUSH_STARTS = {"click-online": "click on Online", "reload-online": "navigation (reload online)"}


def render_flush(flushes: list[dict[str, Any]]) -> list[str]:
    """Section 3: the flush after a reload, per way of starting it."""
    lines = ["## 3. Flush of 1,000 queued messages after a reload", "",
             "| start | runs | → `connected` | → first ack | → `#queued` 0 | `connected` → 0 | "
             "main thread busy / CPU ms | long tasks after `connected` | server CPU ms | once, in order |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for how, start in FLUSH_STARTS.items():
        runs = [f for f in flushes if f["how"] == how]
        ok = sum(f["exactly_once_in_order"] for f in runs)
        figures = [cell(column(runs, key)) for key in ("connected_ms", "first_ack_ms", "flush_ms", "from_connected_ms")]
        lines.append(f"| {start} | {len(runs)} | {' | '.join(figures)} | "
                     f"{cell(column(runs, 'busy_ms'))} / {cell(column(runs, 'cpu_ms'))} | "
                     f"{cell(column(runs, 'long_tasks'))} | {cell(column(runs, 'server_cpu_ms'))} | {ok}/{len(runs)} |")
    return lines + ["", "`#queued` and `connected` are updated by the page's 50 ms status loop, so those ends are "
                    "up to 50 ms late. Main-thread figures (CDP `TaskDuration` / `ThreadTime`) run from the click "
                    "to 0, so only for that start.", ""]


def render_sends(flushes: list[dict[str, Any]]) -> list[str]:
    """Section 4: what a queued send costs the page."""
    queues = [f["queue"] for f in flushes]
    longest = max((duration for q in queues for _, duration in q["long_tasks"]), default=0.0)
    rows = {"page time (each send persisted to IndexedDB before the next)": "page_ms",
            "main thread busy (CDP `TaskDuration`)": "busy_ms", "main thread CPU (CDP `ThreadTime`)": "cpu_ms"}
    return ["## 4. A queued send: `shotx_send_many(1000)` while offline", "",
            "| per send | median (min–max) |", "|---|---|",
            *(f"| {label} | {cell(column(queues, key, per='n'), ' ms', 2)} |" for label, key in rows.items()),
            f"| long tasks (> 50 ms) during 1,000 sends | {cell([len(q['long_tasks']) for q in queues])}, "
            f"longest {longest:.0f} ms |", "",
            "Busy is wall time spent in main-thread tasks (it grows when the core is taken by another "
            "process); CPU is what the thread really ran. The remainder of the page time is waiting for "
            "IndexedDB commits.", ""]


PROFILE_ROWS = {
    "total": "everything profiled (package load + import + `SxClient(...)`)",
    "unpack_buffer": "Pyodide's `_package_loader.unpack_buffer` (installing the wheel)",
    "invalidate_caches": "… of which `importlib.invalidate_caches()` (imports `importlib.metadata`)",
    "stdlib_from_source": "standard-library modules compiled from source (`zipimport._compile_source`)",
    "stdlib_zip_directory": "re-reading python_stdlib.zip's directory (`zipimport._read_directory`)",
    "compile_total": "all `compile()` calls (stdlib and ours: no `.pyc` anywhere)",
    "import_shotx_client": "`import shotx.client` (our modules)",
}


def render_profile(profile: dict[str, Any]) -> list[str]:
    """The profile's attribution table, and the raw cProfile lists folded away."""
    lines = ["## Profile: a cold `loadPackage([\"shotx\"])` + import + `SxClient(...)`", "",
             "cProfile inside Pyodide (`--profile`); it slows every Python call, so read shares, not times. "
             "Rows overlap (cumulative times).", "", "| where | ms (profiled) |", "|---|---|"]
    lines += [f"| {label} | {profile[key]:.0f} |" for key, label in PROFILE_ROWS.items()]
    lines += ["", f"Modules the package load and import brought in (besides ours): "
              f"{', '.join(profile['modules_imported']) or 'none'}.", "",
              "<details><summary>cProfile output</summary>", "", "```", profile["text"], "```", "", "</details>", ""]
    return lines


def render(info: dict[str, Any], results: dict[str, Any]) -> str:
    """The whole Markdown report."""
    lines = render_header(info)
    lines += render_summary(results["nav"], results["start"], results["flush"])
    lines += render_nav(results["nav"])
    lines += render_start(results["start"])
    lines += render_flush(results["flush"])
    lines += render_sends(results["flush"])
    if results.get("profile"):
        lines += render_profile(results["profile"])
    if results["failures"]:
        lines += ["## Measurements lost (left out of the figures)", "",
                  *(f"* {failure}" for failure in results["failures"]), ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one round of everything, no profile (about a minute)")
    parser.add_argument("--rounds", type=int, default=5, help="repetitions of every measurement (default 5)")
    parser.add_argument("--output", type=Path, default=RESULTS, help="Markdown file to write")
    parser.add_argument("--profile", action=argparse.BooleanOptionalAction, default=None,
                        help="cProfile a cold package load + import in the page, into the report "
                             "(default: on, off with --quick)")
    parser.add_argument("--dist-wheel", action="store_true",
                        help="measure web/dist's wheel as built, instead of one built now from the work tree")
    args = parser.parse_args()
    if args.quick:
        args.rounds = 1
    if args.profile is None:
        args.profile = not args.quick
    return args


def stop_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C, so every ``finally`` stops what it started."""
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, handler)


def npm_versions() -> dict[str, str]:
    """The pinned JavaScript assets, from web/package.json."""
    deps = json.loads((ROOT / "web" / "package.json").read_text())["dependencies"]
    return {"pyscript": deps.get("@pyscript/core", "?"), "socketio": deps.get("socket.io-client", "?")}


def run_all(chromium: Chromium, server: tuple[str, int], site: dict[str, Any], rounds: int,
            profile: bool) -> dict[str, Any]:
    """Every measurement, phase by phase, with a progress line per round."""
    base = server[0]
    pages = ["index.html"] + (["index-passthrough.html"] if site["passthrough"] else [])
    results: dict[str, Any] = {"nav": [], "start": [], "flush": [], "failures": []}
    failures = results["failures"]
    for round_no in range(rounds):
        if len(failures) >= MAX_FAILURES:
            raise RuntimeError("too many failed measurements:\n" + "\n".join(failures))
        results["nav"].append(nav_round(chromium, base, pages, round_no, failures))
        cold = [f"{r['page']} {r['cold']['marks']['connected']:.0f}" for r in results["nav"][-1]]
        print(f"  round {round_no + 1}/{rounds}: demo page cold → connected: {', '.join(cold)} ms", flush=True)
        results["start"].append(start_round(chromium, base, round_no, failures))
        adds = [f"{r['variant']} +{r['cold']['marks']['client-ready'] - r['cold']['marks']['pyodide-ready']:.0f}"
                for r in results["start"][-1] if r["variant"] != "pyodide"]
        print(f"  round {round_no + 1}/{rounds}: start-up cold, in page: {', '.join(adds)} ms", flush=True)
    results["flush"] = flush_runs(chromium, server, rounds, failures)
    if profile:
        results["profile"] = attempt(failures, "profile", lambda: start_profile(chromium, base))
    return results


def main() -> None:
    args = parse_args()
    stop_on_sigterm()
    started, cpu_before = time.monotonic(), proc_stat_cpu()
    info: dict[str, Any] = {
        "command": " ".join(["bench/browser.py", *sys.argv[1:]]), "rounds": args.rounds,
        "date": dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"), "nproc": os.cpu_count(),
        "cpu": cpu_model(), "load_start": Path("/proc/loadavg").read_text().split()[0], "git": git_state(),
        **npm_versions(),
    }
    with tempfile.TemporaryDirectory(prefix="shotx-bench-browser-") as tmp:
        site = prepare_site(Path(tmp), work_tree_wheel=not args.dist_wheel)
        info.update({k: site[k] for k in ("wheel", "wheel_bytes", "wheel_sha256", "wheel_built", "stale")})
        with demo_server(site["site"], Path(tmp) / "demo.sqlite3") as server, sync_playwright() as pw:
            chromium = Chromium(pw, Path(tmp))
            print(f"==> demo server {server[0]}, {args.rounds} round(s)", flush=True)
            results = run_all(chromium, server, site, args.rounds, args.profile)
            info["chromium"], info["offsite"] = chromium.version, sorted(set(chromium.offsite))
    info["pyodide"] = next((r["cold"]["bench"]["pyodide"] for runs in results["start"] for r in runs), "?")
    info.update({"load_end": Path("/proc/loadavg").read_text().split()[0],
                 "steal": steal_share(cpu_before, proc_stat_cpu()), "minutes": (time.monotonic() - started) / 60})
    report = render(info, results)
    print("\n" + report)
    args.output.write_text(report + "\n")
    print(f"==> written to {args.output}", flush=True)
    if results["failures"]:
        sys.exit(f"{len(results['failures'])} measurement(s) lost: see the report's last section")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("interrupted: every process this started has been stopped")
