"""bench/browser.py's report: figures from the raw measurements, and the Markdown."""

from __future__ import annotations

import platform
import statistics
from typing import Any

from browser_site import CHROMIUM

TARGETS = {"wheel_ms": 150.0, "flush_ms": 2000.0, "send_ms": 5.0}


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
        start = marks.get("first-package-installed", marks["pyodide-ready"])
        out["adds"].append(marks["client-ready"] - start)
        out["load"].append(marks["package-loaded"] - start)
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
    second = start_figures(runs, "micropip-second", "cold")
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
        f"| the same, once micropip has installed another package (what our wheel itself adds on that path), "
        f"cold | {cell(second['adds'], ' ms')} | {verdict(med(second['adds']), TARGETS['wheel_ms'])} |",
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
    "micropip-second": "+ `loadPackage([\"micropip\"])`, `micropip.install(\"iniconfig\")` (before the clock), "
                       "then `micropip.install(\"shotx\")`, import, `SxClient(...)`",
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
            delta = "–" if variant in ("pyodide", "micropip-second") else cell(same_round_delta(starts, variant, phase))
            lines.append(f"| {label} | {phase} | {cell(fig['ready'])} | {cell(fig['adds'])} | {delta} | "
                         f"{cell(fig['load'])} | {cell(fig['import'])} | {cell(fig['compile'])} |")
    micropip = start_figures(runs, "micropip", "cold")["micropip"]
    stdlib = next((r["cold"]["bench"].get("stdlib_added") for r in runs if r["variant"] == "shotx"), None)
    lines += ["", f"\"adds, in page\" is the precise figure (one page, one clock); \"vs baseline\" subtracts "
              f"two pages' times and carries their noise; the `iniconfig` row counts from the end of that first "
              f"install, so it shows what our wheel itself adds once micropip's one-time costs (importing "
              f"micropip and packaging, reading the lock) are paid. Package load with micropip includes loading "
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
