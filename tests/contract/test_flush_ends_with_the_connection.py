"""What the client builds on the transport contract: its own disconnect()
is the end of the connection, so the flush of stored records ends with it
and gives back the flush lock, however the connection ended.

The store is a real SQLite store whose flush lock is shared, as tabs share a
Web Lock over one IndexedDB: a flush left holding it (defect 1) would make
every later flush wait for ever. The server is a real demo server process.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from shotx.client import SxClient
from shotx.client.sqlite_store import SqliteStore

COUNT = 300


class SharedLockStore:
    """A real store; its flush lock is one asyncio.Lock that other clients could share."""

    def __init__(self, inner: SqliteStore, lock: asyncio.Lock) -> None:
        self.inner, self.lock = inner, lock

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @asynccontextmanager
    async def flush_lock(self) -> AsyncIterator[None]:
        async with self.lock:
            yield


def handled_texts(url: str, prefix: str) -> list[str]:
    with urllib.request.urlopen(f"{url}/demo/handled", timeout=10) as response:
        return [d["text"] for d in json.load(response) if str(d.get("text", "")).startswith(prefix)]


async def until(predicate: Any, what: str, timeout: float = 20.0) -> None:
    async def check() -> None:
        while not predicate():
            await asyncio.sleep(0.005)
    try:
        await asyncio.wait_for(check(), timeout)
    except asyncio.TimeoutError:
        raise AssertionError(f"{what} not within {timeout}s") from None


async def test_disconnect_mid_flush_gives_back_the_flush_lock(start_demo_server, tmp_path: Path) -> None:
    server, lock = start_demo_server(), asyncio.Lock()
    store = SharedLockStore(SqliteStore(tmp_path / "client.sqlite3"), lock)
    client = SxClient(server.url, store=store,  # type: ignore[arg-type]
                      reconnection_delay=0.05, reconnection_delay_max=0.2)
    try:
        for i in range(COUNT):  # queued offline, persisted: flushed as stored records on connect
            await client.queue("test_route", {"text": f"lock-{i}"})
        await client.connect("valid")
        await until(lambda: client.queued <= COUNT * 0.7, "30% of the flush acknowledged")
        await client.disconnect()
        assert client.queued > 0, "the flush ended before disconnect(): this tested nothing"
        assert not lock.locked(), "disconnect() left the flush holding the flush lock"
        await client.connect("valid")
        await until(lambda: client.queued == 0, "the rest of the flush after reconnecting")
        assert await asyncio.to_thread(handled_texts, server.url, "lock-") == [f"lock-{i}" for i in range(COUNT)]
    finally:
        await client.close()
