"""One measurement of one server: what each scenario drives and what it reads of the server.

Every scenario runs the load generator (``loadgen.mjs``) against a server
that is already running (``run.py`` starts them, ours, bare python-socketio
and the Node reference, and rotates their order). Server CPU is read from
/proc when the load generator prints ``MEASURE_START`` and ``MEASURE_END``,
so it covers the measured window only, never the set-up (members
connecting and joining); memory is read once the load generator has seen the
server settle. Each returns one row (a dict) for ``report.py``.
"""

from __future__ import annotations

import json
import signal
from typing import Any

from processes import Children, cpu_seconds, expect_line, memory_mb, read_line

Row = dict[str, Any]


def measured(children: Children, loadgen: list[str], server: Row, mode: str, *options: str) -> tuple[Row, float]:
    """Run one load generator mode; its JSON result and the server's CPU seconds inside its window."""
    process = children.start([*loadgen, mode, "--url", server["url"], *options])
    pid = server["process"].pid
    try:
        expect_line(process, "load generator", "MEASURE_START")
        cpu = cpu_seconds(pid)
        expect_line(process, "load generator", "MEASURE_END")
        cpu = cpu_seconds(pid) - cpu
        result = json.loads(read_line(process, "load generator"))
    finally:
        children.stop(process)
    return result, cpu


def per(cpu: float, count: int) -> float | None:
    """CPU microseconds per unit of work (None when nothing was done)."""
    return cpu / count * 1e6 if count else None


def ack(children: Children, loadgen: list[str], server: Row, clients: int, warmup: float, duration: float) -> Row:
    """Ack round trips: each client sends, awaits its ack, repeats."""
    result, cpu = measured(children, loadgen, server, "ack", "--clients", str(clients),
                           "--warmup", str(warmup), "--duration", str(duration))
    result.update(server=server["name"], server_cpu_s=cpu, cpu_us_per_ack=per(cpu, result["acks"]))
    return result


def fanout(children: Children, loadgen: list[str], server: Row, members: int, burst: int, bursts: int) -> Row:
    """Room fan-out: bursts of ``burst`` room messages to ``members`` members, one burst at a time."""
    result, cpu = measured(children, loadgen, server, "fanout", "--members", str(members),
                           "--burst", str(burst), "--bursts", str(bursts), "--timeout", "300")
    result.update(server=server["name"], server_cpu_s=cpu, cpu_us_per_delivery=per(cpu, result["deliveries"]))
    return result


def connect(children: Children, loadgen: list[str], server: Row, clients: int) -> Row:
    """``clients`` connections at once over WebSocket, to each one's auth_success."""
    result, cpu = measured(children, loadgen, server, "connect", "--clients", str(clients))
    result.update(server=server["name"], server_cpu_s=cpu, cpu_us_per_connect=per(cpu, result["clients"]))
    return result


def churn(children: Children, loadgen: list[str], server: Row, clients: int, wave: int) -> Row:
    """Waves of clients that connect, send, join and leave; returns once the server holds none of them."""
    command = [*loadgen, "churn", "--url", server["url"], "--clients", str(clients), "--wave", str(wave),
               "--timeout", "600"]
    process = children.start(command)
    try:
        return json.loads(read_line(process, "load generator (churn)"))
    finally:
        children.stop(process)


def snapshot(server: Row) -> None:
    """With ``--trace-memory``: the server takes a tracemalloc snapshot (servers.py) and says so."""
    if server.get("traced"):
        server["process"].send_signal(signal.SIGUSR1)
        expect_line(server["process"], server["name"], "SNAPSHOT")


def memory(children: Children, loadgen: list[str], server: Row, clients: int, wave: int) -> Row:
    """Server RSS fresh, after one warm-up wave has come and gone (before), and after ``clients`` more.

    "Before" is taken after a warm-up wave so that what any server builds once
    (imports done lazily, caches, the allocator's first arenas) is not read
    as growth; the fresh figure is reported beside it.
    """
    pid = server["process"].pid
    fresh = memory_mb(pid)["rss"]
    churn(children, loadgen, server, wave, wave)
    snapshot(server)
    before = memory_mb(pid)["rss"]
    result = churn(children, loadgen, server, clients, wave)
    snapshot(server)
    after = memory_mb(pid)
    return {"server": server["name"], "clients": result["clients"], "wave": wave, "fresh_mb": fresh,
            "before_mb": before, "after_mb": after["rss"], "peak_mb": after["peak"],
            "growth": after["rss"] / before - 1, "traced": bool(server.get("traced"))}
