#!/usr/bin/env python3
"""Run the whole Shotx benchmark: ``python3 bench/run.py [--quick]``.

Starts each server under test in its own process on 127.0.0.1 (ours with
each store, bare python-socketio, and the Node reference ``node_server.mjs``),
drives them with the load generator (Node's socket.io-client when Node is
there, else the python-socketio fallback, which has no Node reference and only
the ack figures), runs the in-process room-send and layer benches, prints a
Markdown report and writes it to ``bench/results.md``.

Why rounds: this 2-core machine is shared and noisy, so every round starts
fresh servers and runs every server in every scenario (``live_rounds.py``),
in an order that rotates from one measurement to the next; the report gives
medians over rounds and ratios taken within a round (our server against
bare python-socketio and against Node measured minutes apart), never across
runs.

Every process this starts is stopped at the end, also on Ctrl-C or an error.
"""

from __future__ import annotations

import argparse
import json
import shlex
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
SCENARIOS = ("ack", "fanout", "connect", "memory", "room", "layer")
# name -> servers.py arguments; "node" (node_server.mjs) and "bare" are what every ratio divides by.
SERVERS = {
    "shotx-sqlite": ["shotx", "--store", "sqlite"],
    "shotx-memory": ["shotx", "--store", "memory"],
    # the same with permessage-deflate accepted (SxServer(websocket_compression=True); off by default, as in Node)
    "shotx-sqlite-deflate": ["shotx", "--store", "sqlite", "--compression"],
    "bare": ["bare"],
    # every Python server above runs on uvloop (servers.py --loop uvloop) when it is installed; these on asyncio's
    "shotx-sqlite-asyncio": ["shotx", "--store", "sqlite", "--loop", "asyncio"],
    "bare-asyncio": ["bare", "--loop", "asyncio"],
}


def use_project_python() -> None:
    """Re-run under the project's .venv (made by ``python3 build.py venv``) if we are not in it."""
    if VENV_PYTHON.exists() and Path(sys.prefix).resolve() != VENV_PYTHON.parent.parent.resolve():
        os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), str(Path(__file__).resolve()), *sys.argv[1:]])
    try:
        import shotx.server  # noqa: F401
    except ImportError:
        sys.exit("shotx is not importable: run `python3 build.py venv` first "
                 "(or set PYTHONPATH to a folder holding shotx/server and shotx/client)")


use_project_python()

import live_rounds  # noqa: E402  (after the interpreter switch: they import nothing from shotx, but keep one order)
import report  # noqa: E402
from processes import Children  # noqa: E402


def loadgen_command() -> list[str]:
    """Node's socket.io-client if Node is there (installing it and socket.io from the lock once), else Python."""
    node, npm = shutil.which("node"), shutil.which("npm")
    installed = all((BENCH / "node_modules" / name / "package.json").exists() for name in ("socket.io-client",
                                                                                         "socket.io"))
    if node and not installed and npm:
        print("==> npm ci in bench/ (socket.io-client and socket.io from bench/package-lock.json)", flush=True)
        installed = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=BENCH).returncode == 0
    if node and installed:
        return [node, str(BENCH / "loadgen.mjs")]
    print("==> Node's socket.io-client is not available: using the Python load generator", flush=True)
    return [sys.executable, str(BENCH / "loadgen.py")]


def candidate_env(tree: Path, shim: Path) -> dict[str, str]:
    """Environment importing ``shotx`` from another checkout (``tree``), e.g. a proposed patch.

    ``shim/shotx/{server,client}`` link to the checkout's ``server/`` and
    ``browser_client/``; PYTHONPATH comes before the editable install.
    """
    package = shim / "shotx"
    package.mkdir(parents=True, exist_ok=True)
    for name, folder in (("server", "server"), ("client", "browser_client")):
        if not (tree / folder).is_dir():
            raise RuntimeError(f"--candidate {tree} has no {folder}/")
        (package / name).symlink_to((tree / folder).resolve())
    return {**os.environ, "PYTHONPATH": str(shim)}


def server_list(args: argparse.Namespace, loadgen: list[str]) -> list[live_rounds.Server]:
    """(name, command, environment) of every server each round measures; the Node reference where Node is."""
    python = [sys.executable, str(BENCH / "servers.py")]
    servers: list[live_rounds.Server] = [(name, [*python, *arguments], None) for name, arguments in SERVERS.items()]
    if args.redis:
        servers.insert(2, ("shotx-redis", [*python, "shotx", "--store", "redis", "--redis", args.redis], None))
    if args.candidate_env is not None:
        servers.insert(1, ("candidate-sqlite", [*python, *SERVERS["shotx-sqlite"]], args.candidate_env))
    if args.node:
        servers.append(("node", [loadgen[0], str(BENCH / "node_server.mjs")], None))
    return [server for server in servers if not args.servers or server[0] in args.servers]




def run_round(children: Children, loadgen: list[str], servers: list[live_rounds.Server], round_no: int,
              args: argparse.Namespace, rows: dict[str, list[dict[str, Any]]]) -> None:
    """One round of every part the arguments ask for, appended to ``rows`` by scenario."""
    title = f"==> round {round_no + 1}/{args.rounds}:"
    if {"ack", "fanout", "connect"} & set(args.scenarios):
        print(f"{title} ack round trips, room fan-out, connects", flush=True)
        for scenario, found in live_rounds.live_round(children, loadgen, servers, round_no, args).items():
            rows[scenario] += found
    if "memory" in args.scenarios and args.node:
        print(f"{title} memory after {args.memory_clients:,} clients came and went", flush=True)
        rows["memory"] += live_rounds.memory_round(children, loadgen, servers, round_no, args)
    if "room" in args.scenarios:
        print(f"{title} room sends in-process", flush=True)
        rows["room"] += room_round(children, loadgen, round_no, args)
    if "layer" in args.scenarios:
        print(f"{title} our layer in-process", flush=True)
        rows["layer"] += layer_round(children, round_no, args)


def json_rows(children: Children, command: list[str], args: argparse.Namespace) -> list[dict[str, Any]]:
    """A bench script's JSON lines; with ``--candidate``, its rows again, labelled, from the candidate."""
    what = Path(command[1]).name
    rows = [json.loads(line) for line in run_to_end(children, command, what).splitlines() if line.startswith("{")]
    if args.candidate_env is not None:
        out = run_to_end(children, command, f"{what} (candidate)", env=args.candidate_env)
        for row in (json.loads(line) for line in out.splitlines() if line.startswith("{")):
            if row.get("handler") != "bare":
                label = "store" if "store" in row else "handler"
                rows.append({**row, label: f"candidate {row[label]}"})
    return rows


def room_round(children: Children, loadgen: list[str], round_no: int, args: argparse.Namespace) -> list[dict[str, Any]]:
    """The in-process room-send bench, in its own process, once."""
    command = [sys.executable, str(BENCH / "room_send.py"), "--json", "--sends", str(args.sends),
               "--loadgen", shlex.join(loadgen)]
    if args.redis:
        command += ["--stores", "sqlite", "memory", "redis", "--redis", args.redis]
    rows = json_rows(children, command, args)
    for row in rows:
        row["round"] = round_no
        print(f"    round {round_no + 1} {row['store']:>16} {row['scenario']:<40} {row['cpu_us']:7.1f} µs CPU/send",
              flush=True)
    return rows


def layer_round(children: Children, round_no: int, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Our layer's in-process CPU per request (``layer_cost.py``), in its own process."""
    command = [sys.executable, str(BENCH / "layer_cost.py"), "--json", "--requests", str(args.sends)]
    rows = json_rows(children, command, args)
    for row in rows:
        row["round"] = round_no
        print(f"    round {round_no + 1} layer {row['handler']:>16} {row['clients']:>3} clients "
              f"{row['cpu_us']:7.1f} µs CPU/request", flush=True)
    return rows


def run_to_end(children: Children, command: list[str], what: str, timeout: float = 300,
               env: dict[str, str] | None = None) -> str:
    """Run a child to completion (bounded) and return its stdout."""
    process = children.start(command, env=env)
    try:
        out, _ = process.communicate(timeout=timeout)
    finally:
        children.stop(process)
    if process.returncode != 0:
        raise RuntimeError(f"{what} failed with code {process.returncode}")
    return out


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one short round (under a minute)")
    parser.add_argument("--rounds", type=int, help="rounds to take medians over (default 3; --quick 1)")
    parser.add_argument("--output", type=Path, default=BENCH / "results.md")
    parser.add_argument("--python-loadgen", action="store_true", help="use loadgen.py even where Node is there")
    parser.add_argument("--candidate", type=Path, metavar="CHECKOUT",
                        help="also measure the server of another checkout (e.g. with a proposed patch) side by side")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0",
                        help="Redis for the shotx-redis figures (skipped when it does not answer; '' to skip)")
    parser.add_argument("--scenarios", nargs="+", choices=SCENARIOS, default=list(SCENARIOS),
                        help="which parts to run (default: all)")
    parser.add_argument("--servers", nargs="+", metavar="NAME", help="measure only these (e.g. shotx-sqlite bare "
                        "node; default: all); ratios need node and bare among them")
    parser.add_argument("--memory-clients", type=int, help="clients that come and go in the memory scenario "
                        "(default 5,000; --quick 1,000)")
    parser.add_argument("--trace-memory", type=Path, metavar="DIR",
                        help="our servers run under tracemalloc in the memory scenario; their heap diffs go to DIR "
                        "(tracing costs memory and time: those RSS figures are not comparable)")
    args = parser.parse_args()
    args.command = shlex.join(["python3", "bench/run.py", *sys.argv[1:]])
    args.redis = args.redis if args.redis and redis_answers(args.redis) else ""
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.warmup, args.duration, args.sends = (0.5, 1.5, 5000) if args.quick else (1.0, 3.0, 20_000)
    args.bursts = 2 if args.quick else 5
    args.fanout_members, args.connects, args.wave = (100, 1000), 500, 500
    args.memory_clients = args.memory_clients or (1000 if args.quick else 5000)
    if args.trace_memory is not None:
        args.trace_memory.mkdir(parents=True, exist_ok=True)
    return args


def redis_answers(url: str) -> bool:
    """Whether a Redis answers PING at ``url`` (its figures are measured only then)."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=1)
    try:
        return bool(client.ping())
    except (redis.ConnectionError, OSError):
        print(f"==> no Redis at {url}: no shotx-redis figures", flush=True)
        return False
    finally:
        client.close()


def stop_on_sigterm() -> None:
    """Turn SIGTERM into an exception so the ``finally`` that stops children runs."""
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, handler)


def main() -> None:
    """Parse arguments, then run with a candidate checkout importable if one was given."""
    args = parse_args()
    stop_on_sigterm()
    with tempfile.TemporaryDirectory(prefix="shotx-candidate-") as shim:
        args.candidate_env = candidate_env(args.candidate, Path(shim)) if args.candidate else None
        run_all(args)


def run_all(args: argparse.Namespace) -> None:
    """Every round of every part, then the report."""
    children = Children()
    loadgen = [sys.executable, str(BENCH / "loadgen.py")] if args.python_loadgen else loadgen_command()
    args.node = loadgen[-1].endswith(".mjs")  # the Node reference, fan-out, connects and memory need Node
    if not args.node:
        print("==> without Node: no Node reference, fan-out, connect or memory figures", flush=True)
    servers = server_list(args, loadgen)
    machine = report.machine_info(loadgen)
    started = report.cpu_counters()
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in SCENARIOS}
    began = time.monotonic()
    try:
        for round_no in range(args.rounds):
            run_round(children, loadgen, servers, round_no, args, rows)
    finally:
        children.stop_all()
    machine["steal"] = report.steal_share(started, report.cpu_counters())
    machine["loadavg_end"] = report.load_average()
    machine["elapsed_s"] = time.monotonic() - began
    text = report.markdown(rows, machine, args)
    print(text)
    args.output.write_text(text)
    print(f"==> written to {args.output}", flush=True)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
    except RuntimeError as error:  # a child failed: say which, without a traceback
        sys.exit(f"bench failed: {error}")
