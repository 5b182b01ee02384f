"""One round of the end-to-end scenarios: fresh servers, every scenario, the servers' order rotating.

Why rotate: this 2-core machine is shared and noisy, so no server should
always be measured in the same slow minute; every ratio (to the Node
reference, to bare python-socketio) is later taken within a round.

A server here is ``(name, command, environment)``; the command prints
``READY <port>``. ``memory_round`` starts a fresh process for each server,
one at a time, so its RSS figures hold nothing from other scenarios.
"""

from __future__ import annotations

import argparse
import tempfile
from functools import partial
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import scenarios
from processes import Children, expect_line

Server = tuple[str, list[str], "dict[str, str] | None"]
Row = dict[str, Any]
CLIENT_COUNTS = (1, 10, 100)
BURST = 20
T = TypeVar("T")


def start_server(children: Children, name: str, command: list[str], env: dict[str, str] | None,
                 folder: Path, trace_to: Path | None = None) -> Row:
    """Start one server (a fresh SQLite file in ``folder`` for ours) and wait for its READY line."""
    if "servers.py" in " ".join(command):
        command = [*command, "--db", str(folder / f"{name}.sqlite3")]
        if trace_to is not None:
            command += ["--trace-memory", str(trace_to)]
    process = children.start(command, env=env)
    port = expect_line(process, name, "READY ").split()[1]
    return {"name": name, "process": process, "url": f"http://127.0.0.1:{port}", "traced": trace_to is not None
            and "--trace-memory" in command}


def rotated(servers: list[T], shift: int) -> list[T]:
    shift %= len(servers)
    return servers[shift:] + servers[:shift]


def steps(args: argparse.Namespace) -> Iterator[tuple[str, Callable[[Children, list[str], Row], Row], str]]:
    """(scenario, measure one server, label) for every step of a round the arguments ask for."""
    if "ack" in args.scenarios:
        for clients in CLIENT_COUNTS:
            yield "ack", partial(scenarios.ack, clients=clients, warmup=args.warmup, duration=args.duration), \
                f"{clients:>4} clients"
    if "fanout" in args.scenarios and args.node:
        for members in args.fanout_members:
            yield "fanout", partial(scenarios.fanout, members=members, burst=BURST, bursts=args.bursts), \
                f"{members:>4} members"
    if "connect" in args.scenarios and args.node:
        yield "connect", partial(scenarios.connect, clients=args.connects), f"{args.connects} connects"


def describe(scenario: str, row: Row) -> str:
    if scenario == "ack":
        return f"{row['acks_per_s']:8.0f} acks/s, {row['cpu_us_per_ack'] or 0:6.1f} µs CPU/ack"
    if scenario == "fanout":
        return (f"first {row['first_ms']:6.1f} ms, last {row['last_ms']:7.1f} ms, "
                f"{row['deliveries_per_s']:8.0f} deliveries/s, {row['cpu_us_per_delivery'] or 0:5.1f} µs CPU each")
    return f"all in {row['all_ms']:7.1f} ms, {row['cpu_us_per_connect'] or 0:6.0f} µs CPU/connect"


def live_round(children: Children, loadgen: list[str], servers: list[Server], round_no: int,
               args: argparse.Namespace) -> dict[str, list[Row]]:
    """Fresh servers, then every step on every server, in an order rotating from step to step."""
    rows: dict[str, list[Row]] = {"ack": [], "fanout": [], "connect": []}
    with tempfile.TemporaryDirectory(prefix="shotx-bench-") as folder:
        live = [start_server(children, name, command, env, Path(folder)) for name, command, env in servers]
        try:
            for step, (scenario, measure, label) in enumerate(steps(args)):
                for server in rotated(live, round_no + step):
                    row = measure(children, loadgen, server)
                    row["round"] = round_no
                    rows[scenario].append(row)
                    print(f"    round {round_no + 1} {server['name']:>16} {label}: {describe(scenario, row)}",
                          flush=True)
        finally:
            for server in live:
                children.stop(server["process"])
    return rows


def memory_round(children: Children, loadgen: list[str], servers: list[Server], round_no: int,
                 args: argparse.Namespace) -> list[Row]:
    """Each server fresh and alone: RSS before and after ``args.memory_clients`` clients came and left."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="shotx-bench-") as folder:
        for name, command, env in rotated(servers, round_no):
            trace_to = args.trace_memory / f"{name}-round{round_no + 1}.txt" if args.trace_memory else None
            server = start_server(children, name, command, env, Path(folder), trace_to)
            try:
                row = scenarios.memory(children, loadgen, server, args.memory_clients, args.wave)
            finally:
                children.stop(server["process"])
            row["round"] = round_no
            rows.append(row)
            print(f"    round {round_no + 1} {name:>16} memory: {row['fresh_mb']:.0f} MB fresh, "
                  f"{row['before_mb']:.0f} MB before, {row['after_mb']:.0f} MB after {row['clients']:,} clients "
                  f"({row['growth'] * 100:+.0f}%), peak {row['peak_mb']:.0f} MB"
                  + (f"; heap diff in {trace_to}" if row["traced"] else ""), flush=True)
    return rows
