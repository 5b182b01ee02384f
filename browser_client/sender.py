"""The outbox in motion: persist, emit in order, resolve on ack, resend.

:class:`Sender` owns the outbox of one client. A record is written to the
store before anything else happens; one pump per connection emits records in
outbox order with at most ``flush_window`` awaiting their ack; on each
connection the records still owed are re-read from the store under its flush
lock (tabs sharing IndexedDB take turns) and emitted again. A send the
outbox has no room for is refused before it is stored, and a 2007 answer
(a server limit) pauses the pump and re-emits the refused records later, in
order (``outbox_limits.py`` decides both).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from collections.abc import Coroutine
from functools import partial
from typing import Any

from . import binary, protocol
from .core import Outbox, OutboxRecord
from .errors import MessageError, PayloadTooLarge, SxError, SxTimeoutError
from .outbox_limits import OutboxBounds, Throttle, is_limit_refusal
from .store import ClientStore
from .transport import Transport

log = logging.getLogger("shotx.client")


def reply_data(reply: Any) -> Any:
    """The ``data`` of a success ack; raise :class:`MessageError` for a failure."""
    if not isinstance(reply, dict) or not isinstance(reply.get("meta"), dict):
        raise SxError("INVALID_REPLY", f"Invalid reply from server: {reply!r}")
    meta = reply["meta"]
    if meta.get("success") is True:
        return reply.get("data")
    if meta.get("success") is not False:
        raise SxError("INVALID_REPLY", f"Invalid reply from server: {reply!r:.200}")
    code, error = meta.get("code"), meta.get("error")
    raise MessageError(code if type(code) is int else protocol.HANDLER_ERROR,
                       error if isinstance(error, str) and error else "Unknown error", reply)


async def _first_of(*events: asyncio.Event) -> None:
    """Wait until one of ``events`` is set."""
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)


class Sender:
    def __init__(self, store: ClientStore, transport: Transport, max_message_size: int, flush_window: int,
                 bounds: OutboxBounds | None = None) -> None:
        self.store, self.transport = store, transport
        self.max_message_size, self.flush_window = max_message_size, flush_window
        self.bounds = bounds or OutboxBounds()
        self.outbox = Outbox()
        # 2007 answers: the pump pauses, the refused records go out again after it.
        self.throttle = Throttle()
        self._sent: set[str] = set()  # emitted on this connection (a record queued twice goes out once)
        self._drained = asyncio.Event()  # set while nothing emitted on this connection awaits its ack
        self._replies: dict[str, asyncio.Future[Any]] = {}
        self._emitted: dict[str, asyncio.Event] = {}  # set once a record went out
        self._session_ids: set[str] = set()  # records this client made (not loaded)
        # Called with (record, reply) for the ack of a record nobody here awaits: one
        # restored from the store (queued before a reload or a restart, or by another tab).
        self.on_restored_reply: Callable[[OutboxRecord, Any], None] | None = None
        self._never_sent: set[str] = set()  # made here and not emitted yet: no resend flag
        self._storing: set[str] = set()  # made here, their store write not done: not sent yet
        # Went out on this connection as a first send, no answer yet. Only these may go out
        # again as first sends after a 2007: a copy sent before (another connection) may have run.
        self._first_out: set[str] = set()
        self._queue: deque[OutboxRecord] = deque()
        self._live = False  # True once this connection's stored records are queued
        self._wake = asyncio.Event()
        self._in_flight = 0  # emitted on this connection, ack not seen yet
        self._window_open = asyncio.Event()
        self._pump_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # Acked records not yet deleted from the store: deleted in batches, so
        # a flush of a thousand costs tens of store writes, not a thousand.
        self._unremoved: set[str] = set()
        self._removal: list[str] = []
        self._removal_task: asyncio.Task[None] | None = None
        # What the running flush of stored records still waits on (an Event, not
        # a future per record: a future costs event-loop callbacks per ack).
        self._owed: set[str] = set()
        self._owed_settled = asyncio.Event()
        # This connection's end and its flush of stored records (see stop()).
        self._ended = asyncio.Event()
        self._flush_task: asyncio.Task[None] | None = None
        self._lock_holder: asyncio.Event | None = None  # the `ended` of the flush holding the lock

    def load(self, records: list[OutboxRecord]) -> None:
        self.outbox = Outbox(records)  # their emitted-events come with the flush

    async def enqueue(self, event: str, meta: dict[str, Any], data: Any) -> tuple[OutboxRecord, asyncio.Future[Any]]:
        """Persist a new record, then send it if the connection is live; returns it with the
        future of its ack (made here: the ack may come before the caller awaits it)."""
        # JSON text plus attachment bytes (shotx.client.binary): what the server's limit counts
        size = binary.encoded_size({"meta": {**meta, "id": protocol.uuid7()}, "data": data})
        if size > self.max_message_size:
            raise PayloadTooLarge(size, self.max_message_size)
        if (full := self.bounds.refusal(len(self.outbox), self.outbox.bytes, size)) is not None:
            raise full
        record = self.outbox.add(event, meta, data, size=size)
        self._emitted[record.id] = asyncio.Event()
        answered = self._replies[record.id] = asyncio.get_running_loop().create_future()
        # Ours from now on: a flush syncing with the store while this write is
        # on its way must keep the record, not drop it as flushed elsewhere;
        # and it must not send it before it is stored (the outbox's promise).
        self._session_ids.add(record.id)
        self._never_sent.add(record.id)
        self._storing.add(record.id)
        try:
            await self.store.add_outbox(record)
        except BaseException:  # nothing of it stays (IndexedDB's quota error: OutboxFull)
            self.outbox.acknowledge(record.id)
            self._session_ids.discard(record.id)
            self._never_sent.discard(record.id)
            self._emitted.pop(record.id, None)
            self._replies.pop(record.id, None)
            raise
        finally:
            self._storing.discard(record.id)
        if self._live:
            self._queue.append(record)
            self._wake.set()
        return record, answered

    async def reply(self, record: OutboxRecord, answered: asyncio.Future[Any], timeout: float) -> Any:
        """The handler's result (``answered`` is :meth:`enqueue`'s future); the timeout
        counts from when the record went out."""
        if not timeout:
            return reply_data(await answered)
        emitted = self._emitted.get(record.id)
        if emitted is not None:  # None: acknowledged already
            await emitted.wait()
        try:
            return reply_data(await asyncio.wait_for(asyncio.shield(answered), timeout))
        except asyncio.TimeoutError:
            raise SxTimeoutError(record.type, timeout) from None

    def _answered(self, record_id: str, reply: Any) -> None:
        """An ack: a 2007 keeps the record for later (it was not handled), anything else settles it."""
        if record_id not in self.outbox:
            return  # a late ack for a resent copy
        self._in_flight = max(0, self._in_flight - 1)
        if self._in_flight <= self.flush_window - self._refill:
            self._window_open.set()
        if not self._in_flight:
            self._drained.set()
        if is_limit_refusal(reply):
            return self._refused(record_id, reply)
        self._first_out.discard(record_id)
        self.throttle.admitted()
        self._acknowledged(record_id, reply)

    def _refused(self, record_id: str, reply: Any) -> None:
        self._sent.discard(record_id)  # it goes out again on this connection
        if record_id in self._first_out:  # and, if it went out as a first send, again as one: the
            self._never_sent.add(record_id)  # 2007 says that copy was not handled (no lookup needed)
        delay = self.throttle.refuse(record_id)
        if delay is not None:
            log.info("the server refused a send (%s); sending again in %.2fs",
                     reply["meta"].get("error"), delay)
            self._spawn(self._resume_after(delay, self._ended))

    async def _resume_after(self, delay: float, ended: asyncio.Event) -> None:
        """After the delay and once every ack in flight is back (later records
        come back refused too, see outbox_limits.py), emit the refused records
        first, in outbox order. A connection that ends first leaves them to the
        next one's flush."""
        try:
            await asyncio.wait_for(ended.wait(), delay)
            return
        except asyncio.TimeoutError:
            pass
        await _first_of(self._drained, ended)
        if ended.is_set():
            return
        refused = self.throttle.resume()
        self._queue.extendleft(reversed([r for r in self.outbox.pending() if r.id in refused]))
        self._wake.set()

    def _acknowledged(self, record_id: str, reply: Any) -> None:
        acknowledged = self.outbox.acknowledge(record_id)
        if acknowledged is None:
            return
        emitted = self._emitted.pop(record_id, None)
        if emitted is not None:
            emitted.set()
        self._unremoved.add(record_id)
        self._removal.append(record_id)
        if self._removal_task is None:
            self._removal_task = asyncio.ensure_future(self._remove_acknowledged())
        future = self._replies.pop(record_id, None)
        if future is not None and not future.done():
            future.set_result(reply)
        elif future is None and record_id not in self._session_ids and self.on_restored_reply is not None:
            self.on_restored_reply(acknowledged, reply)
        if record_id in self._owed:
            self._owed.discard(record_id)
            if not self._owed:
                self._owed_settled.set()

    async def _remove_acknowledged(self) -> None:
        """Delete acked records from the store, one write at a time: acks that
        arrive while a write is on its way go together in the next one."""
        try:
            while self._removal:
                batch, self._removal = self._removal, []
                try:
                    await self.store.remove_outbox(batch)
                except Exception:  # they stay stored: resent later, answered from the server's memory
                    log.exception("could not delete %d acknowledged records from the store", len(batch))
                self._unremoved.difference_update(batch)
        finally:
            self._removal_task = None

    async def settle(self) -> None:
        """Wait for acked records to be deleted from the store (before it closes)."""
        while self._removal_task is not None:
            await asyncio.shield(self._removal_task)

    def start(self, lost: asyncio.Event) -> None:
        """A connection is up (rooms rejoined): resend what is owed, then go live.

        ``lost`` is set when the transport reports a drop; :meth:`stop` ends
        the connection's work whether or not anything was reported.
        """
        self._in_flight = 0
        self._drained.set()
        self._queue = deque()
        self._sent = set()
        self._first_out = set()  # what went out on the last connection may have run: resends now
        self.throttle.reset()
        self._live = False
        self._ended = ended = asyncio.Event()
        self._pump_task = asyncio.ensure_future(self._pump())
        self._flush_task = self._spawn(self._flush_stored(lost, ended))

    async def stop(self) -> None:
        """End this connection's pump and flush; the flush lock is free (or,
        if the flush still waits for it, given back the moment it comes)."""
        self._ended.set()
        pump, self._pump_task = self._pump_task, None
        if pump is not None:
            pump.cancel()
            await asyncio.gather(pump, return_exceptions=True)
        self.throttle.reset()  # the refused records stay in the outbox: the next flush sends them
        flush, self._flush_task = self._flush_task, None
        if flush is not None and self._lock_holder is self._ended:
            await asyncio.gather(flush, return_exceptions=True)
        self._queue.clear()
        self._live = False
        self._in_flight = 0

    @property
    def _refill(self) -> int:
        """Free window slots that wake a waiting pump: a burst of acks wakes it
        once per quarter window, not once per ack (each wake is a browser task)."""
        return max(1, self.flush_window // 4)

    async def _pump(self) -> None:
        sent = self._sent  # this connection's; a 2007 takes a record out to emit it again
        while True:
            while self._queue and not self.throttle.paused:
                if self._in_flight >= self.flush_window:
                    self._window_open.clear()
                    await self._window_open.wait()
                    continue
                record = self._queue.popleft()
                if record.id not in self.outbox or record.id in sent:
                    continue
                sent.add(record.id)
                self._in_flight += 1
                self._drained.clear()
                await self.transport.emit(record.event, self._payload(record), partial(self._answered, record.id))
                emitted = self._emitted.get(record.id)
                if emitted is not None:  # None: acked already, during the emit
                    emitted.set()
            self._wake.clear()
            await self._wake.wait()

    def _payload(self, record: OutboxRecord) -> dict[str, Any]:
        """The envelope, with ``meta.resend`` on anything that may have gone out
        before (so the server looks its reply up in its store)."""
        if record.id in self._never_sent:
            self._never_sent.discard(record.id)
            self._first_out.add(record.id)
            return record.payload()
        return {"meta": {**record.meta, "resend": True}, "data": record.data}

    async def _flush_stored(self, lost: asyncio.Event, ended: asyncio.Event) -> None:
        """Resend everything owed, holding the store's flush lock until acked
        or until this connection ends (``lost``: reported; ``ended``: stopped).

        Sends made meanwhile wait in the outbox, so the pump emits them after
        the older records: outbox order is send order. Never cancelled while
        it waits for the lock: a Web Lock granted to a cancelled request
        would stay held, so it takes the lock and gives it straight back.
        """
        async with self.store.flush_lock():
            self._lock_holder = ended
            try:
                await self._resend_owed(lost, ended)
            finally:
                self._lock_holder = None

    async def _resend_owed(self, lost: asyncio.Event, ended: asyncio.Event) -> None:
        if lost.is_set() or ended.is_set():
            return
        stored = (await self.store.load()).outbox
        if lost.is_set() or ended.is_set():
            return  # a later connection owns the queue now
        self.outbox.sync([r for r in stored if r.id not in self._unremoved], keep=self._session_ids)
        # one still being stored is sent by its enqueue once stored (the queue is live by then)
        owed = [record for record in self.outbox.pending() if record.id not in self._storing]
        # In a store others can open too (a tab, a process: any durable one), another client
        # may have flushed these while this one could not, and been answered: they go as
        # resends, which the server answers from its store. A first send skips that lookup
        # and, once the server's memory of replies is gone (a restart, another worker), runs
        # the handler again.
        shared = getattr(self.store, "durable", False)
        for record in owed:
            self._emitted.setdefault(record.id, asyncio.Event())
            if shared:
                self._never_sent.discard(record.id)
        self._owed = {record.id for record in owed}
        self._owed_settled = asyncio.Event()
        if not owed:
            self._owed_settled.set()
        self._queue.extend(owed)
        self._live = True
        self._wake.set()
        await _first_of(self._owed_settled, lost, ended)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """A task kept referenced until done (the loop holds tasks weakly)."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task
