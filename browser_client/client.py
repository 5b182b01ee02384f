"""SxClient: one client API for CPython and the browser.

The policy lives in ``core.py``; this module only sequences it with a
transport and a store, which are picked once, by ``sys.platform``: under
Pyodide (``emscripten``) the JavaScript socket.io-client and IndexedDB, in
CPython python-socketio and memory or SQLite.

Sequencing rules, each one a promise of the README:

* a send is persisted before it is emitted, and emitted by one pump in
  outbox order, at most ``flush_window`` awaiting their acks at a time;
* after a (re)connect, every joined room is rejoined with ``since`` before
  the pump resumes, and every unacknowledged record is emitted again;
* room messages go through one inbox, handled one at a time, and a room's
  offset is stored only after its handler finished.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import sys
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import protocol
from .core import Backoff, Outbox, OutboxRecord, RoomBook, SeenIds
from .errors import AuthError, ConnectError, MessageError, PayloadTooLarge, SxError, SxTimeoutError
from .store import ClientStore, MemoryStore
from .transport import Transport

IN_BROWSER = sys.platform == "emscripten"
log = logging.getLogger("shotx.client")
Handler = Callable[..., Any]


def default_transport() -> Transport:
    if IN_BROWSER:
        from .js_transport import JsTransport
        return JsTransport()
    from .socketio_transport import SocketioTransport
    return SocketioTransport()


def open_store(store: ClientStore | str | Path | None) -> ClientStore:
    """None: IndexedDB in the browser, memory in CPython; a path: SQLite."""
    if store is None or store == "memory":
        if IN_BROWSER and store is None:
            from .indexeddb_store import IndexedDBStore
            return IndexedDBStore()
        return MemoryStore()
    if isinstance(store, (str, Path)):
        from .sqlite_store import SqliteStore
        return SqliteStore(store)
    return store


async def _call(fn: Callable[..., Any], *args: Any) -> Any:
    result = fn(*args)
    return await result if inspect.isawaitable(result) else result


def _arity(fn: Callable[..., Any]) -> int:
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return 2
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return 2
    return min(2, sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params))


class SxClient:
    """Connects to a Shotx server; sends survive disconnects (and, with a
    persistent store, restarts and page reloads).

    >>> client = SxClient("http://localhost:3000", timeout=5)
    >>> # login = await client.connect("valid"); reply = await client.send("test_route", {"n": 1})
    """

    def __init__(self, url: str = protocol.DEFAULT_URL, *, path: str = protocol.DEFAULT_PATH,
                 timeout: float = 0, reconnection: bool = True, reconnection_delay: float = 1.0,
                 reconnection_delay_max: float = 30.0, randomization: float = 0.5,
                 store: ClientStore | str | Path | None = None, transport: Transport | None = None,
                 max_message_size: int = protocol.MAX_MESSAGE_SIZE, flush_window: int = 64) -> None:
        if not isinstance(url, str) or not url:
            raise TypeError("url must be a non-empty string")
        if timeout < 0 or flush_window < 1:
            raise ValueError("timeout must be >= 0 and flush_window >= 1")
        self.url, self.path, self.timeout = url, path, timeout
        self.reconnection = reconnection
        self.backoff = Backoff(reconnection_delay, reconnection_delay_max, randomization)
        self.store = open_store(store)
        self.transport = transport or default_transport()
        self.max_message_size = max_message_size
        self.flush_window = flush_window
        self.handlers: dict[str, tuple[Handler, int]] = {}
        self.auth_data: Any = None
        #: the last join answer per room, from join() or an automatic rejoin
        self.join_answers: dict[str, Any] = {}
        self.state = "disconnected"
        self.outbox = Outbox()
        self.rooms = RoomBook()
        self._loaded = False
        self._token: str | None = None
        self._replies: dict[str, asyncio.Future[Any]] = {}
        self._emitted_events: dict[str, asyncio.Event] = {}
        self._joins: dict[str, asyncio.Future[Any]] = {}
        self._queue: deque[OutboxRecord] = deque()
        self._live = False  # True once this connection's stored records are queued
        self._session_ids: set[str] = set()
        self._wake = asyncio.Event()
        self._inbox: asyncio.Queue[Any] = asyncio.Queue()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._pump_task: asyncio.Task[None] | None = None
        self._inbox_task: asyncio.Task[None] | None = None
        self._lost = asyncio.Event()
        self._first: asyncio.Future[Any] | None = None
        self._window: asyncio.Semaphore | None = None

    # ---- public API ------------------------------------------------------------

    @property
    def is_connected(self) -> bool:
        return self.state == "connected"

    @property
    def queued(self) -> int:
        """Messages in the outbox: queued offline or awaiting their ack."""
        return len(self.outbox)

    async def connect(self, token: str | None = None, timeout: float | None = None) -> Any:
        """Connect and authenticate; returns the server's auth data.

        Raises :class:`AuthError` at once when the server refuses the token.
        Network failures are retried with backoff (``timeout`` bounds the
        wait; the retries go on in the background, as in Shotx).
        """
        if self.is_connected:
            return self.auth_data
        await self._load()
        self._token = protocol.uuid7() if token is None else token
        if self._first is None or self._first.done():
            self._first = asyncio.get_running_loop().create_future()
        if self._loop_task is None or self._loop_task.done():
            self._loop_task = asyncio.ensure_future(self._connection_loop())
        limit = self.timeout if timeout is None else timeout
        try:
            return await (asyncio.wait_for(asyncio.shield(self._first), limit) if limit else asyncio.shield(self._first))
        except asyncio.TimeoutError:
            raise SxTimeoutError("connect", limit) from None

    async def restore(self) -> None:
        """Load the stored outbox and rooms now (``connect`` does it too), so
        that ``queued`` shows what earlier runs left before any connection."""
        await self._load()

    async def disconnect(self) -> None:
        """Close the connection; queued messages stay in the store for later."""
        task, self._loop_task = self._loop_task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self._drop_connection()
        self.state = "disconnected"

    async def close(self) -> None:
        """Disconnect and release the store."""
        await self.disconnect()
        if self._inbox_task is not None:
            self._inbox_task.cancel()
            await asyncio.gather(self._inbox_task, return_exceptions=True)
            self._inbox_task = None
        await self.store.close()

    async def send(self, type_: str, data: Any = None, timeout: float | None = None) -> Any:
        """Send a typed message and return the handler's result.

        Queued (and persisted) while offline, flushed in order on connect.
        Raises :class:`MessageError` with the Shotx code on an error reply,
        :class:`SxTimeoutError` when the ack takes longer than ``timeout``
        seconds after the message went out (0 waits forever).
        """
        if not isinstance(type_, str) or not type_:
            raise TypeError("Message type must be a non-empty string")
        return await self.emit(protocol.MESSAGE_EVENT, data, {"type": type_}, timeout=timeout)

    async def emit(self, event: str, data: Any = None, meta: dict[str, Any] | None = None,
                   timeout: float | None = None) -> Any:
        """Send a raw event with ``{meta, data}``; queued like :meth:`send`."""
        record = await self._enqueue(event, dict(meta or {}), data)
        return await self._await_reply(record, self.timeout if timeout is None else timeout)

    async def queue(self, type_: str, data: Any = None) -> asyncio.Future[Any]:
        """Queue a send and return once it is persisted, with a future of its result.

        For bursts: ``futures = [await client.queue("t", n) for n in range(1000)]``
        costs one store write each and no round trip; the future resolves (or
        fails with :class:`MessageError`) when the ack arrives.
        """
        if not isinstance(type_, str) or not type_:
            raise TypeError("Message type must be a non-empty string")
        record = await self._enqueue(protocol.MESSAGE_EVENT, {"type": type_}, data)
        return asyncio.ensure_future(self._await_reply(record, 0))

    async def join(self, room: str, timeout: float | None = None) -> Any:
        """Join a room (remembered, rejoined after reconnects and reloads).

        Returns the join answer ``{room, since, head, replayed, missed}``; a
        non-zero ``missed`` means retention dropped messages we never saw.
        """
        protocol.check_room(room)
        await self._load()
        self.rooms.join(room)
        await self.store.save_room(room, self.rooms.offsets[room])
        future = self._joins.get(room)
        if future is None or future.done():
            future = self._joins[room] = asyncio.get_running_loop().create_future()
        if self.is_connected:
            self._spawn(self._join_now(room, wait_handled=True))
        limit = self.timeout if timeout is None else timeout
        try:
            return await (asyncio.wait_for(asyncio.shield(future), limit) if limit else asyncio.shield(future))
        except asyncio.TimeoutError:
            raise SxTimeoutError(protocol.JOIN, limit) from None

    async def leave(self, room: str, timeout: float | None = None) -> Any:
        """Leave a room: no more messages from it, no rejoin."""
        protocol.check_room(room)
        await self._load()
        self.rooms.leave(room)
        await self.store.remove_room(room)
        if not self.is_connected:
            return {"room": room}
        return await self._request(protocol.LEAVE, {"room": room}, self.timeout if timeout is None else timeout)

    def on_message(self, type_: str, handler: Handler | None = None) -> Any:
        """Handle server messages of ``type_`` with ``handler(data[, meta])``.

        Usable as a call (returns self) or as a decorator.
        """
        if not isinstance(type_, str) or not type_ or (handler is not None and not callable(handler)):
            raise TypeError("on_message needs a non-empty str type and a function")
        if handler is None:
            def decorate(fn: Handler) -> Handler:
                self.on_message(type_, fn)
                return fn
            return decorate
        self.handlers[type_] = (handler, _arity(handler))
        return self

    # ---- outbox ----------------------------------------------------------------

    async def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        state = await self.store.load()
        self.outbox = Outbox(state.outbox)
        self.rooms = RoomBook(dict(state.rooms), SeenIds(state.seen))
        for record in self.outbox.pending():
            self._emitted_events[record.id] = asyncio.Event()
        if self._inbox_task is None:
            self._inbox_task = asyncio.ensure_future(self._inbox_loop())

    async def _enqueue(self, event: str, meta: dict[str, Any], data: Any) -> OutboxRecord:
        size = protocol.encoded_size({"meta": {**meta, "id": protocol.uuid7()}, "data": data})
        if size > self.max_message_size:
            raise PayloadTooLarge(size, self.max_message_size)
        await self._load()
        record = self.outbox.add(event, meta, data)
        self._emitted_events[record.id] = asyncio.Event()
        try:
            await self.store.add_outbox(record)
        except BaseException:
            self.outbox.acknowledge(record.id)
            raise
        self._session_ids.add(record.id)
        if self.is_connected and self._live:
            self._queue.append(record)
            self._wake.set()
        return record

    async def _await_reply(self, record: OutboxRecord, timeout: float) -> Any:
        future = self._replies.setdefault(record.id, asyncio.get_running_loop().create_future())
        if timeout:
            await self._emitted_events[record.id].wait()
            try:
                reply = await asyncio.wait_for(asyncio.shield(future), timeout)
            except asyncio.TimeoutError:
                raise SxTimeoutError(record.type, timeout) from None
        else:
            reply = await future
        return self._result(reply)

    @staticmethod
    def _result(reply: Any) -> Any:
        if not isinstance(reply, dict) or not isinstance(reply.get("meta"), dict):
            raise SxError("INVALID_REPLY", f"Invalid reply from server: {reply!r}")
        meta = reply["meta"]
        if not meta.get("success"):
            raise MessageError(meta.get("code", protocol.HANDLER_ERROR), meta.get("error") or "Unknown error", reply)
        return reply.get("data")

    def _acknowledged(self, record_id: str, reply: Any) -> None:
        if self.outbox.acknowledge(record_id) is None:
            return  # a late ack for a resent copy
        emitted = self._emitted_events.pop(record_id, None)
        if emitted is not None:
            emitted.set()
        if self._window is not None:
            self._window.release()
        self._spawn(self.store.remove_outbox(record_id))
        future = self._replies.pop(record_id, None)
        if future is not None and not future.done():
            future.set_result(reply)

    async def _pump(self, window: asyncio.Semaphore) -> None:
        """Emit queued records in order, at most ``flush_window`` unacknowledged."""
        while True:
            while self._queue:
                await window.acquire()
                record = self._queue.popleft()
                if record.id not in self.outbox:
                    window.release()
                    continue
                await self.transport.emit(record.event, record.payload(),
                                          lambda reply, rid=record.id: self._acknowledged(rid, reply))
                emitted = self._emitted_events.get(record.id)
                if emitted is not None:  # None: acked already, during the emit
                    emitted.set()
            self._wake.clear()
            await self._wake.wait()

    # ---- connection ------------------------------------------------------------

    async def _connection_loop(self) -> None:
        while True:
            try:
                self.state = "connecting"
                auth = await self._open_connection()
            except AuthError as error:
                self.state = f"error: {error.code}"
                log.warning("connection refused: %s", error.code)
                return self._settle_first(error)
            except Exception as error:  # network trouble, or a bug: never stop retrying silently
                if not isinstance(error, (ConnectError, OSError, asyncio.TimeoutError)):
                    log.exception("connection attempt failed")
                await self._drop_connection()
                if not self.reconnection:
                    self.state = "disconnected"
                    return self._settle_first(error if isinstance(error, SxError) else ConnectError(str(error)))
                delay = self.backoff.next_delay()
                log.info("connect failed (%s); retrying in %.2fs", error, delay)
                await asyncio.sleep(delay)
                continue
            self.backoff.reset()
            self._settle_first(auth)
            await self._lost.wait()
            await self._drop_connection()
            self.state = "connecting"
            if not self.reconnection:
                self.state = "disconnected"
                return
            await asyncio.sleep(self.backoff.next_delay())

    def _settle_first(self, outcome: Any) -> None:
        first = self._first
        if first is None or first.done():
            return
        if isinstance(outcome, BaseException):
            first.set_exception(outcome)
            first.exception()  # a caller that stopped waiting must not leave it unretrieved
        else:
            first.set_result(outcome)

    async def _open_connection(self) -> Any:
        self._lost = asyncio.Event()
        authed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def on_event(name: str, payload: Any) -> None:
            if name == protocol.AUTH_SUCCESS_EVENT and not authed.done():
                authed.set_result(payload)
            elif name == protocol.MESSAGE_EVENT:
                self._inbox.put_nowait(payload)
            elif name == "disconnect":
                self.state = "connecting" if self.state == "connected" else self.state
                self._lost.set()

        await self.transport.connect(self.url, self.path, {"token": self._token}, on_event)
        self.auth_data = await asyncio.wait_for(authed, 10)
        self.state = "connected"
        log.info("connected to %s", self.url)
        for room in list(self.rooms.offsets):
            await self._join_now(room)
        self._window = asyncio.Semaphore(self.flush_window)
        self._queue = deque()
        self._live = False
        self._pump_task = asyncio.ensure_future(self._pump(self._window))
        self._spawn(self._flush_stored(self._lost))
        return self.auth_data

    async def _flush_stored(self, lost: asyncio.Event) -> None:
        """Resend everything owed, holding the store's flush lock until acked.

        Sends made meanwhile wait in the outbox, so the pump emits them after
        the older records: outbox order is send order.
        """
        async with self.store.flush_lock():
            if lost.is_set():
                return
            self.outbox.sync((await self.store.load()).outbox, keep=self._session_ids)
            owed = self.outbox.pending()
            for record in owed:
                self._emitted_events.setdefault(record.id, asyncio.Event())
            self._queue.extend(owed)
            self._live = True
            self._wake.set()
            loop = asyncio.get_running_loop()
            acks = [asyncio.shield(self._replies.setdefault(r.id, loop.create_future())) for r in owed]
            settled = asyncio.ensure_future(asyncio.gather(*acks))
            dropped = asyncio.ensure_future(lost.wait())
            await asyncio.wait({settled, dropped}, return_when=asyncio.FIRST_COMPLETED)
            for waiter in (settled, dropped):
                waiter.cancel()
            await asyncio.gather(settled, dropped, return_exceptions=True)

    async def _drop_connection(self) -> None:
        pump, self._pump_task = self._pump_task, None
        if pump is not None:
            pump.cancel()
            await asyncio.gather(pump, return_exceptions=True)
        self._queue.clear()
        self._live = False
        self._window = None
        try:
            await self.transport.disconnect()
        except Exception:
            log.debug("transport disconnect failed", exc_info=True)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _request(self, type_: str, data: Any, timeout: float) -> Any:
        """A built-in request (join, leave): sent now, never queued."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        await self.transport.emit(protocol.MESSAGE_EVENT, protocol.request(type_, data),
                                  lambda reply: future.done() or future.set_result(reply))
        try:
            reply = await (asyncio.wait_for(future, timeout) if timeout else future)
        except asyncio.TimeoutError:
            raise SxTimeoutError(type_, timeout) from None
        return self._result(reply)

    async def _join_now(self, room: str, wait_handled: bool = False) -> None:
        request = self.rooms.join_request(room)
        try:
            answer = await self._request(protocol.JOIN, request, self.timeout or 30)
        except SxError as error:
            log.error("join %s failed: %s", room, error)
            self._settle_join(room, error)
            return
        if wait_handled:
            # The replay arrived before this ack: join() returns with it handled.
            # Not on rejoin, where a handler awaiting a send would wait on us.
            await self._inbox.join()
        self.join_answers[room] = answer
        if isinstance(answer, dict):
            if answer.get("missed"):
                log.warning("room %s: %s messages expired before we rejoined", room, answer["missed"])
            head = answer.get("head")
            if isinstance(head, int) and self.rooms.offsets.get(room) is not None and head < (self.rooms.offsets[room] or 0):
                self.rooms.offsets[room] = head  # the server's log was reset
                await self.store.save_room(room, head)
        self._settle_join(room, answer)

    def _settle_join(self, room: str, outcome: Any) -> None:
        future = self._joins.pop(room, None)
        if future is None or future.done():
            return
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
            future.exception()
        else:
            future.set_result(outcome)

    # ---- incoming ----------------------------------------------------------------

    async def _inbox_loop(self) -> None:
        while True:
            message = await self._inbox.get()
            try:
                await self._handle(message)
            except Exception:
                log.exception("handling an incoming message failed")
            finally:
                self._inbox.task_done()

    async def _handle(self, message: Any) -> None:
        if not isinstance(message, dict) or not isinstance(message.get("meta"), dict):
            log.warning("ignored a message without meta")
            return
        meta = message["meta"]
        if not self.rooms.accept(meta):
            return
        found = self.handlers.get(str(meta.get("type")))
        if found is None:
            log.warning("no handler for message type %r", meta.get("type"))
        else:
            handler, arity = found
            try:
                await _call(handler, *(message.get("data"), meta)[:arity])
            except Exception:
                log.exception("handler for %r raised", meta.get("type"))
        room, offset, message_id = meta.get("room"), meta.get("offset"), meta.get("id")
        if self.rooms.handled(room, offset, message_id) and isinstance(message_id, str):
            await self.store.mark_handled(room, offset, message_id)
