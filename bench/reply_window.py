"""How long a killed server may leave a handled message unremembered (issue 8, defect 10).

``.venv/bin/python bench/reply_window.py [SENDS]``

Not a test and not a benchmark: a quick, indicative measurement. One
in-process server on a real SQLite file (in a temporary directory) with the
real python-socketio clients on the same loop, so the figures include their
CPU. For each message it takes the time from the handler's end to the
return of the store's ``remember`` (which returns once the reply is
durable), which is when the ack may leave: the crash window in which a SIGKILL makes a resend
run the handler again (an upper bound: it includes the wake-up after the
commit). Sequential sends from one client, then the same number spread over
ten concurrent clients, whose acks share commits.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import socketio
from aiohttp import web

from shotx.client import protocol
from shotx.server import SqliteStore, SxServer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))
from yielding_store import YieldingStore  # noqa: E402  (turns=0: a pass-through that can be timed)


class TimedStore(YieldingStore):
    """The real SQLite store; notes when each ``remember`` returns (its reply is durable then)."""

    def __init__(self, inner: SqliteStore) -> None:
        super().__init__(inner, turns=0)
        self.durable_at: dict[str, float] = {}

    async def remember(self, principal: str, message_id: str, reply_json: str, ts: float) -> None:
        await super().remember(principal, message_id, reply_json, ts)
        self.durable_at[message_id] = time.perf_counter()


async def measure(sends: int, clients: int, path: Path) -> list[float]:
    app, ended = web.Application(), {}
    store = TimedStore(SqliteStore(path))
    sx = SxServer(app, store=store, retention_interval=0)

    def work(data, socket, meta):
        ended[meta["id"]] = time.perf_counter()
        return data

    sx.on_message("work", work)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    tabs = []
    for _ in range(clients):
        sio = socketio.AsyncClient(reconnection=False)
        await sio.connect(url, auth={"token": "t"}, socketio_path="shotx", transports=["websocket"])
        tabs.append(sio)

    async def send_all(sio: socketio.AsyncClient, count: int) -> None:
        for n in range(count):
            await sio.call("message", protocol.request("work", n), timeout=10)

    await asyncio.gather(*(send_all(sio, sends // clients) for sio in tabs))
    for sio in tabs:
        await sio.disconnect()
    await runner.cleanup()
    return [(store.durable_at[i] - ended[i]) * 1e6 for i in ended]


def summary(label: str, micros: list[float]) -> str:
    ordered = sorted(micros)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (f"{label}: {len(ordered)} sends, handler end -> reply durable: median {statistics.median(ordered):.0f} us, "
            f"p99 {p99:.0f} us, max {ordered[-1]:.0f} us")


async def main(sends: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for clients in (1, 10):
            micros = await measure(sends, clients, Path(tmp) / f"window-{clients}.sqlite3")
            print(summary(f"SQLite, {clients} client(s)", micros), flush=True)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000))
