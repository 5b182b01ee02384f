"""A send whose store write is still on its way when a connection's flush starts.

The flush reads the stored outbox and keeps the records this client made (a
write on its way must not be dropped as flushed elsewhere). It used to send
them too, before they were stored: against the README's promise (written to
the store before it is emitted), and when the ack came back before the write
ended, the reply found no future to settle; the caller's future, made after,
waited for ever. The store here is a real SQLite store whose ``add_outbox``
waits until the test lets it go, as IndexedDB's write under load does.
"""

from __future__ import annotations

import asyncio

from shotx.client.sqlite_store import SqliteStore

from recording_route import recording  # tests/integration is on sys.path


class HeldWrites(SqliteStore):
    """A real SQLite client store; each ``add_outbox`` waits for :attr:`release` first."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.release = asyncio.Event()
        self.writing = asyncio.Event()
        self.loaded = asyncio.Event()

    async def load(self):  # type: ignore[no-untyped-def]
        state = await super().load()
        self.loaded.set()
        return state

    async def add_outbox(self, record):  # type: ignore[no-untyped-def]
        self.writing.set()
        await self.release.wait()
        await super().add_outbox(record)


async def test_a_send_is_not_emitted_before_it_is_stored_and_its_future_gets_the_ack(start_server, make_client,
                                                                                   tmp_path):
    handled: list[int] = []
    server = await start_server(recording(handled))
    store = HeldWrites(str(tmp_path / "client.sqlite3"))
    client = make_client(server.url, store=store)
    await client.restore()
    queued = asyncio.ensure_future(client.queue("route", {"n": 1}))  # its write held
    await store.writing.wait()
    await client.connect("t")  # the flush runs while the write is held
    await store.loaded.wait()  # the flush read the outbox; its pump runs within the next loop turns
    for _ in range(5):
        await asyncio.sleep(0)
    await client.join("after-the-flush")  # a round trip behind anything the pump sent: handled in order
    assert handled == [], "sent before it was stored"
    store.release.set()
    future = await asyncio.wait_for(queued, 5)
    assert await asyncio.wait_for(future, 5) == {"n": 1}
    assert handled == [1] and client.queued == 0

