"""Live room messages when several server processes share one store.

With one process, a room send broadcasts its own message once committed
(``server.py``). With several, each process has only its own sockets, and a
member must still see one room's messages in offset order whichever process
sent them: a client drops a message at or below the offset it has handled,
so a 6 arriving after a 7 would be lost to it. So a shared store publishes
every append in offset order (``RedisStore`` does it in the same atomic
script), and every process, the sender included, delivers from that stream
to its own members of the room.

Deliveries to a room run under the room's lock, which a join holds while it
replays, so a member gets the replay and then the live messages after it,
never interleaved (live ones it already had from the replay, it drops by
offset). Per room with members here, the process remembers the last offset
it delivered (or, right after a join, the offset the join replayed up to):
a gap (a message the subscription missed, as Redis's publish is at most
once) is filled from the log before the new message goes out.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from .room_locks import RoomLocks
from .store import LogEntry, SharedStore

log = logging.getLogger("shotx.server")
RETRY_FIRST, RETRY_MOST = 0.1, 5.0  # seconds between attempts to subscribe again
CATCH_UP_PAGE = 500
# Seconds a room's delivered mark in the store may lag what was delivered here:
# one write per room per interval instead of a Redis round trip per message.
MARK_DELAY = 0.05


class SharedDelivery:
    """One server process's deliveries from a shared store's stream of appends (see above)."""

    def __init__(self, store: SharedStore, room_locks: RoomLocks,
                 send: Callable[[LogEntry], Awaitable[None]], has_members: Callable[[str], bool],
                 replaced: Callable[[str, str | None], Awaitable[None]] | None = None) -> None:
        self.store, self.room_locks, self.send, self.has_members = store, room_locks, send, has_members
        self.replaced = replaced
        self._last: dict[str, int] = {}  # room -> highest offset delivered live here
        self._epochs: dict[str, str] = {}  # room -> the history those offsets count in
        self._marks: dict[str, int] = {}  # room -> offset delivered here, not yet marked in the store
        self._marking: asyncio.Task[None] | None = None
        self._closed = False

    async def run(self) -> None:
        """Deliver the store's live entries until cancelled, subscribing again when the stream fails.

        After a failure the subscription comes back before the log is read
        for what the stream missed: an entry appended in between is then
        heard (and dropped by offset if the catch-up had it). The other way
        round, an entry appended after the read and before the subscription
        was neither, and reached the members here only with a later entry."""
        delay, failed = RETRY_FIRST, False
        while True:
            try:
                if failed:
                    await self.store.subscribe()
                    failed = False
                    await self.catch_up()
                async for entry in self.store.live_entries():
                    delay = RETRY_FIRST
                    try:
                        await self.deliver(entry)
                    except Exception:
                        log.exception("room %s: offset %d could not be delivered live", entry.room, entry.offset)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("live room messages: the store's stream failed (%s); again in %.1fs", error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MOST)
                failed = True

    async def catch_up(self) -> None:
        """After a gap in the stream: deliver what each room with members here missed, from the log."""
        for room, last in list(self._last.items()):
            log.debug("room %s: catching up after offset %d", room, last)
            try:
                if await self._history_replaced(room):
                    continue
                entries = await self.store.read(room, last, CATCH_UP_PAGE)
                while entries:
                    for entry in entries:
                        await self.deliver(entry)
                    entries = await self.store.read(room, entries[-1].offset, CATCH_UP_PAGE)
            except Exception:
                log.exception("room %s: catching up after offset %d failed", room, last)

    async def _history_replaced(self, room: str) -> bool:
        """Is the room's log another history than the one delivered here (a Redis
        that came back empty)? Its offsets then mean nothing to the members here:
        going on would hand them the new log's entries past their old offsets as
        if they followed on, and skip the rest. They are sent away instead
        (``replaced``), and rejoin with their epoch: the join replays the new
        history from its start and tells them (``reset: new_history``)."""
        known = self._epochs.get(room)
        if known is None or (await self.store.bounds(room)).epoch == known:
            return False
        await self._send_away(room)
        return True

    async def _send_away(self, room: str) -> None:
        async with self.room_locks.hold(room):
            await self._forget_history(room)

    async def _forget_history(self, room: str, joiner: str | None = None) -> None:
        """Under the room's lock: drop what was kept for the old history, send its members away."""
        log.warning("room %s: its log is a new history (the store lost the old one): members here rejoin", room)
        self._drop(room)
        self._marks.pop(room, None)  # an old history's offset: no delivered mark of the new one
        if self.replaced is not None:
            await self.replaced(room, joiner)

    async def joined(self, room: str, head: int, epoch: str = "", joiner: str | None = None) -> None:
        """A join (holding the room's lock) replays up to ``head``: live delivery here
        goes on from there, so that an entry the stream misses right after the
        join is filled from the log, and catch-up after a dropped subscription
        covers the room. An offset already kept for the room stays: entries
        between it and ``head`` are still on their way in the stream.

        A join may be the first here to see that the room's log is another
        history (a Redis that came back empty, before any live entry of the
        new one arrived). The members already here hold offsets of the old
        one, and from now on every entry would carry the epoch this process
        knows, so none of them would ever be sent away: they are sent away
        now (all but ``joiner``, the socket whose replay follows)."""
        known = self._epochs.get(room)
        log.debug("room %s: joined at %d of %s (kept here: %s of %s)", room, head, epoch, self._last.get(room), known)
        if epoch and known is not None and known != epoch:
            await self._forget_history(room, joiner)
        self._last.setdefault(room, head)
        if epoch:
            self._epochs[room] = epoch

    async def forget(self, room: str) -> None:
        """The room may have no member here any more (a leave, a disconnect): then what is
        kept for it goes, so that a process that sees a million rooms does not keep a
        million offsets. A later join starts from the log again, as it does after a
        delivery that finds the room empty. Under the room's lock: a join in progress
        holds it until its member is in the room."""
        async with self.room_locks.hold(room):
            if not self.has_members(room):
                log.debug("room %s: no member here any more (kept: %s)", room, self._last.get(room))
                self._drop(room)

    def _drop(self, room: str) -> None:
        """Forget the offset and epoch kept for ``room``: the next join or entry starts from the store."""
        self._last.pop(room, None)
        self._epochs.pop(room, None)

    @property
    def rooms_kept(self) -> int:
        """Rooms with an offset or an epoch kept here (rooms with members here, at most)."""
        return len(self._last.keys() | self._epochs.keys())

    async def deliver(self, entry: LogEntry) -> None:
        async with self.room_locks.hold(entry.room):
            # Under the lock: a join that held it may have just taken another history as the room's.
            known = self._epochs.get(entry.room)
            log.debug("room %s: live %d of %s (kept here: %s of %s)", entry.room, entry.offset, entry.epoch or "-",
                      self._last.get(entry.room), known)
            if entry.epoch and known is not None and entry.epoch != known:
                await self._forget_history(entry.room)  # redis-py reconnected to a Redis that came back empty
                return
            if not self.has_members(entry.room):
                self._drop(entry.room)  # a later join replays from the log
                return
            last = self._last.get(entry.room)
            if last is not None and entry.offset <= last:
                return
            missed = [] if last is None or entry.offset == last + 1 else await self.store.read(
                entry.room, last, entry.offset - last - 1)
            for each in (*missed, entry):
                await self.send(each)
            self._last[entry.room] = entry.offset
        self._marks[entry.room] = entry.offset
        if self._marking is None and not self._closed:
            self._marking = asyncio.ensure_future(self._mark_soon())

    async def _mark_soon(self) -> None:
        try:
            await asyncio.sleep(MARK_DELAY)
            await self.write_marks()
        finally:
            self._marking = None
            if self._marks and not self._closed:  # delivered while the marks were being written
                self._marking = asyncio.ensure_future(self._mark_soon())

    async def write_marks(self) -> None:
        """Move each room's delivered mark in the store to what was delivered here."""
        marks, self._marks = self._marks, {}
        for room, offset in marks.items():
            try:
                await self.store.mark_delivered(room, offset)
            except Exception:
                log.exception("room %s: delivered mark %d could not be written", room, offset)

    async def close(self) -> None:
        """Stop the pending mark write and do it now (before the store closes)."""
        self._closed = True
        if self._marking is not None:
            self._marking.cancel()
            self._marking = None
        await self.write_marks()
