"""The end-to-end figures as ratios to the Node reference and to bare python-socketio.

Every ratio is taken within a round (a server against the reference measured
minutes apart on the same noisy machine), then the median over rounds is
shown, as ``report.py`` does for bare. The targets are issue 10's.
"""

from __future__ import annotations

import statistics
from typing import Any

Row = dict[str, Any]
REFERENCES = ("node", "bare")


def median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def summarize(rows: list[Row], key: str, metrics: tuple[str, ...]) -> list[Row]:
    """Medians per (``key``, server), each metric also as ``<metric>_vs_node`` and ``<metric>_vs_bare``.

    >>> rows = [{"n": 1, "server": s, "round": 0, "x": x} for s, x in (("node", 2.0), ("bare", 4.0), ("ours", 3.0))]
    >>> [(r["server"], r["x_vs_node"], r["x_vs_bare"]) for r in summarize(rows, "n", ("x",))]
    [('ours', 1.5, 0.75), ('node', 1.0, 0.5), ('bare', 2.0, 1.0)]
    """
    out = []
    for value in sorted({r[key] for r in rows}):
        at = [r for r in rows if r[key] == value]
        refs = {(r["server"], r["round"]): r for r in at if r["server"] in REFERENCES}
        for server in sorted({r["server"] for r in at}, key=lambda s: (s in REFERENCES, REFERENCES.index(s)
                                                                        if s in REFERENCES else 0, s)):
            mine = [r for r in at if r["server"] == server]
            summary: Row = {key: value, "server": server, "runs": len(mine)}
            for metric in metrics:
                summary[metric] = median([r.get(metric) for r in mine])
                for ref in REFERENCES:
                    summary[f"{metric}_vs_{ref}"] = median(
                        [ratio(r.get(metric), refs.get((ref, r["round"]), {}).get(metric)) for r in mine])
            out.append(summary)
    return out


def _f(value: float | None, digits: int = 0, suffix: str = "") -> str:
    return "–" if value is None else f"{value:,.{digits}f}{suffix}"


def cell(s: Row, metric: str, digits: int) -> str:
    """A figure with its two ratios: ``1,234 (0.50× node, 0.90× bare)``."""
    ratios = ", ".join(f"{_f(s.get(f'{metric}_vs_{ref}'), 2, '×')} {ref}" for ref in REFERENCES
                       if s["server"] != ref)
    return f"{_f(s[metric], digits)} ({ratios})"


def table(summary: list[Row], key: str, columns: list[tuple[str, str, int]]) -> list[str]:
    """A Markdown table: ``key``, server, then each (title, metric, digits) with its ratios, then runs."""
    lines = [f"| {key} | server | " + " | ".join(title for title, _, _ in columns) + " | runs |",
             "|---:|---|" + "---:|" * len(columns) + "---:|"]
    for s in summary:
        lines.append(f"| {s[key]:,} | {s['server']} | " + " | ".join(cell(s, metric, digits)
                                                                    for _, metric, digits in columns)
                     + f" | {s['runs']} |")
    return lines


FANOUT = [("first member, ms", "first_ms", 2), ("last member, ms", "last_ms", 1),
          ("deliveries/s", "deliveries_per_s", 0), ("server CPU µs/delivery", "cpu_us_per_delivery", 1)]
CONNECT = [("all connected, ms", "all_ms", 0), ("server CPU µs/connect", "cpu_us_per_connect", 0)]
MEMORY = [("RSS fresh, MB", "fresh_mb", 0), ("RSS before, MB", "before_mb", 0),
          ("RSS after, MB", "after_mb", 0), ("after / before", "after_vs_before", 2), ("peak, MB", "peak_mb", 0)]


def memory_summary(rows: list[Row]) -> list[Row]:
    return summarize([{**r, "after_vs_before": ratio(r["after_mb"], r["before_mb"])} for r in rows], "clients",
                     tuple(metric for _, metric, _ in MEMORY))


def sections(rows: dict[str, list[Row]], args: Any) -> list[str]:
    """The fan-out, connect and memory sections (each only when it ran)."""
    lines: list[str] = []
    if rows["fanout"]:
        lines += ["## Room fan-out", "",
                  "Members of one room receive bursts of 20 room messages, asked for by a publisher client that is "
                  "not a member (`bench_publish`: for `shotx-*`, 20 concurrent `sx.to(room).send` calls, each "
                  "appended to the store's log before it is broadcast; for `node` and `bare`, 20 broadcasts and no "
                  f"log). One warm-up burst, then {args.bursts} measured, one at a time. First member: from the "
                  "request to the first member's first message; last member: to the last member's last message "
                  "(medians over bursts); deliveries/s: all deliveries of the measured bursts over their summed "
                  "times. Server CPU over the measured "
                  "bursts, divided by the deliveries. Ratios in brackets: to `node`, then to `bare`.", "",
                  *table(summarize(rows["fanout"], "members", tuple(m for _, m, _ in FANOUT)), "members", FANOUT),
                  ""]
    if rows["connect"]:
        lines += ["## Connects", "",
                  "Clients connect at once over WebSocket (`transports: [\"websocket\"]`), each to its "
                  "`auth_success`. Server CPU over that window, divided by the clients.", "",
                  *table(summarize(rows["connect"], "clients", tuple(m for _, m, _ in CONNECT)), "clients",
                         CONNECT), ""]
    if rows["memory"]:
        traced = any(r["traced"] for r in rows["memory"])
        lines += ["## Memory", "",
                  f"Each server fresh and alone: RSS (VmRSS) fresh; before: after a warm-up wave of {args.wave} "
                  f"clients came and went; after: once {args.memory_clients:,} more, in waves of {args.wave} (each "
                  "client sends one `test_route`, joins one of 50 rooms, leaves), have gone and the server reports "
                  "no connection left (`bench_stats`). Peak: VmHWM. What holds the growth: `--trace-memory` "
                  "(bench/README.md).", "",
                  *(["**Our servers ran under tracemalloc (`--trace-memory`): their figures are inflated and not "
                     "comparable.**", ""] if traced else []),
                  *table(memory_summary(rows["memory"]), "clients", MEMORY), ""]
    return lines


def node_verdicts(rows: dict[str, list[Row]], acks: list[Row]) -> list[str]:
    """Issue 10's targets, against the Node reference, for the SQLite store."""
    lines = []
    fan = {s["members"]: s for s in summarize(rows["fanout"], "members", ("deliveries_per_s", "last_ms"))
           if s["server"] == "shotx-sqlite"}
    if 1000 in fan:
        s = fan[1000]
        lines.append(check("fan-out to 1,000 members, deliveries/s ≥ 1.0× node", s["deliveries_per_s_vs_node"],
                           lambda r: r >= 1.0))
        lines.append(check("fan-out to 1,000 members, time to the last member ≤ 1.2× node", s["last_ms_vs_node"],
                           lambda r: r <= 1.2))
    by_clients = {s["clients"]: s for s in acks if s["server"] == "shotx-sqlite"}
    if 100 in by_clients:
        lines.append(check("acks at 100 clients ≥ 0.6× node", by_clients[100].get("acks_per_s_vs_node"),
                           lambda r: r >= 0.6))
        lines.append(check("server CPU per ack at 100 clients ≤ 1.6× node", by_clients[100].get("cpu_us_vs_node"),
                           lambda r: r <= 1.6))
    if 1 in by_clients:
        lines.append(check("p50 latency at 1 client ≤ 2× node", by_clients[1].get("p50_ms_vs_node"),
                           lambda r: r <= 2.0))
    for s in summarize(rows["connect"], "clients", ("cpu_us_per_connect",)):
        if s["server"] == "shotx-sqlite":
            lines.append(check(f"{s['clients']} connects at once, server CPU per connect ≤ 1.0× node",
                               s["cpu_us_per_connect_vs_node"], lambda r: r <= 1.0))
    for s in memory_summary(rows["memory"]):
        if s["server"].startswith("shotx-"):
            lines.append(check(f"{s['server']}: RSS after {s['clients']:,} clients within 20% of before",
                               s["after_vs_before"], lambda r: r <= 1.2))
    return lines


def check(target: str, value: float | None, met: Any) -> str:
    verdict = "not measured" if value is None else ("met" if met(value) else "not met")
    return f"* {target}: {_f(value, 2, '×')} — **{verdict}**"
