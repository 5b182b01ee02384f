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
import datetime as dt
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
RESULTS = BENCH / "results-browser.md"


def use_project_python() -> None:
    """Re-run under .venv (``python3 build.py venv``), where Playwright and shotx are."""
    if VENV_PYTHON.exists() and Path(sys.prefix).resolve() != VENV_PYTHON.parent.parent.resolve():
        os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), str(Path(__file__).resolve()), *sys.argv[1:]])


use_project_python()

from playwright.sync_api import sync_playwright  # noqa: E402

from browser_measure import (Chromium, MAX_FAILURES, attempt, flush_runs, nav_round,  # noqa: E402
                             start_profile, start_round)
from browser_report import render  # noqa: E402
from browser_site import (demo_server, git_state, cpu_model, prepare_site, proc_stat_cpu,  # noqa: E402
                          steal_share)

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
