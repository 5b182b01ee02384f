"""bench/browser.py's measurements in Chromium: the demo page, the start-up
variants, the flush of a queued outbox and the cost of a queued send."""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from playwright.sync_api import BrowserContext, CDPSession, Page, Playwright, Request
from playwright.sync_api import Error as PlaywrightError

from browser_site import CHROMIUM, handled_texts, process_cpu_seconds

# The machine's network is closed: without these Chromium keeps calling Google.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
LOAD_TIMEOUT_MS = 90_000  # a cold Pyodide start on a loaded 2-core machine
FLUSH_TIMEOUT_MS = 60_000
FLUSH_COUNT = 1000
MAX_FAILURES = 5  # crashed or timed-out measurements before the run gives up
POLL_MS = 50  # polling our own marks; the times themselves are taken in the page


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


START_VARIANTS = {"pyodide": True, "shotx": True, "zipimport": True, "micropip": False,  # name: warm too?
                  "micropip-second": False}


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
