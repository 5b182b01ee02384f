"""SxClient: one client API for CPython and the browser.

The policy lives in ``core.py``; the outbox in motion in ``sender.py``;
incoming messages in ``inbox.py``. This module holds the public API and the
connection's life: connect, rejoin every room with ``since``, hand the
connection to the sender, and reconnect with backoff when it drops. The
transport and the store are picked once, by ``sys.platform``: under Pyodide
(``emscripten``) the JavaScript socket.io-client and IndexedDB, in CPython
python-socketio and memory or SQLite.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import protocol
from .core import Backoff, Outbox, OutboxRecord, RoomBook, SeenIds
from .errors import AuthError, ConnectError, JoinRefused, MessageError, SxError, SxTimeoutError
from .inbox import GapHandler, Handler, Inbox, call_each
from .outbox_limits import DEFAULT_MAX_QUEUED, DEFAULT_MAX_QUEUED_BYTES, OutboxBounds
from .sender import Sender, reply_data
from .store import ClientStore, MemoryStore
from .transport import Transport

IN_BROWSER = sys.platform == "emscripten"
log = logging.getLogger("shotx.client")
#: A token, or a function (sync or async) that returns the token to use now.
TokenSource = Any
TOKEN_TIMEOUT = 10.0  # seconds a token function may take before the attempt counts as failed


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


def _settle(future: asyncio.Future[Any] | None, outcome: Any) -> None:
    """Resolve a future with a value or an exception, once; an exception is
    marked retrieved, since the caller may have stopped waiting."""
    if future is None or future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
        future.exception()
    else:
        future.set_result(outcome)


@dataclass(frozen=True)
class RestoredReply:
    """The reply to a send restored from the store (see :meth:`SxClient.on_reply`):
    ``result`` is the handler's result, or ``error`` says why there is none."""

    id: str
    type: str
    sent: Any
    result: Any
    error: SxError | None


class _Lost(ConnectError):
    """The connection ended while we waited for something only it could bring."""

    def __init__(self, what: str) -> None:
        super().__init__(f"connection lost while waiting for {what}")


async def _before_lost(future: asyncio.Future[Any], lost: asyncio.Event, seconds: float, what: str) -> Any:
    """Wait for ``future`` (not cancelling it), but no longer than the connection lives.

    An ack or event a connection did not bring before it ended never comes
    (transport.py), so waiting out a timeout on a dead connection only stalls
    the next one.
    """
    ended = asyncio.ensure_future(lost.wait())
    try:
        await asyncio.wait({future, ended}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        ended.cancel()
    if future.done():
        return future.result()
    if lost.is_set():
        raise _Lost(what)
    raise SxTimeoutError(what, seconds)


async def _bounded(future: asyncio.Future[Any], seconds: float, what: str) -> Any:
    """Wait for a shared future (0: forever) without cancelling it on timeout."""
    if not seconds:
        return await asyncio.shield(future)
    try:
        return await asyncio.wait_for(asyncio.shield(future), seconds)
    except asyncio.TimeoutError:
        raise SxTimeoutError(what, seconds) from None


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
                 max_message_size: int = protocol.MAX_MESSAGE_SIZE, flush_window: int = 64,
                 max_queued: int | None = DEFAULT_MAX_QUEUED,
                 max_queued_bytes: int | None = DEFAULT_MAX_QUEUED_BYTES) -> None:
        if not isinstance(url, str) or not url:
            raise TypeError("url must be a non-empty string")
        if timeout < 0 or flush_window < 1:
            raise ValueError("timeout must be >= 0 and flush_window >= 1")
        self.url, self.path, self.timeout = url, path, timeout
        self.reconnection = reconnection
        self.backoff = Backoff(reconnection_delay, reconnection_delay_max, randomization)
        self.store = open_store(store)
        self.transport = transport or default_transport()
        bounds = OutboxBounds(max_queued, max_queued_bytes)
        self.sender = Sender(self.store, self.transport, max_message_size, flush_window, bounds)
        self.sender.on_restored_reply = self._restored_reply
        self._reply_handlers: dict[str, list[Callable[[RestoredReply], Any]]] = {}
        self.inbox = Inbox(self.store)
        self.auth_data: Any = None
        #: the last join answer per room, from join() or an automatic rejoin
        self.join_answers: dict[str, Any] = {}
        self.state = "disconnected"
        #: this client's id, kept in its store: the server matches resends by it
        self.client_id: str | None = None
        self._loaded = False
        self._token: TokenSource = None
        self._auth_error_handlers: list[Callable[[AuthError], Any]] = []
        self._joins: dict[str, asyncio.Future[Any]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._lost = asyncio.Event()
        self._first: asyncio.Future[Any] | None = None

    # ---- state -------------------------------------------------------------------

    @property
    def is_connected(self) -> bool:
        return self.state == "connected"

    @property
    def outbox(self) -> Outbox:
        return self.sender.outbox

    @property
    def rooms(self) -> RoomBook:
        return self.inbox.rooms

    @property
    def durable(self) -> bool:
        """Does the store keep the outbox and rooms across a restart or a reload?

        False for memory, and for IndexedDB where the browser would not open
        it (the store then keeps state in memory for the page's life and logs
        ``IndexedDB unavailable`` once); read it after :meth:`restore` (or
        ``connect``, or a first send), which opens the store.
        """
        return bool(getattr(self.store, "durable", False))

    @property
    def queued(self) -> int:
        """Messages in the outbox: queued offline or awaiting their ack."""
        return len(self.sender.outbox)

    async def restore(self) -> None:
        """Load the stored outbox and rooms now (``connect`` does it too), so
        that ``queued`` shows what earlier runs left before any connection."""
        if self._loaded:
            return
        self._loaded = True
        state = await self.store.load()
        self.client_id = state.client_id
        if self.client_id is None:  # a new store: this client instance's id from now on
            self.client_id = uuid.uuid4().hex
            await self.store.save_client_id(self.client_id)
        self.sender.load(state.outbox)
        self.inbox.rooms = RoomBook(dict(state.rooms), SeenIds(state.seen), dict(state.epochs))

    # ---- connection ----------------------------------------------------------------

    async def connect(self, token: TokenSource = None, timeout: float | None = None) -> Any:
        """Connect and authenticate; returns the server's auth data.

        ``token`` is a token, or a function (sync or async) the client calls
        before every connection attempt, so that a token that expired while
        offline (or across a reload) is replaced on reconnect:
        ``await client.connect(lambda: auth.current_token())``.

        Raises :class:`AuthError` at once when the server refuses the token.
        A refusal on a later reconnect stops the retries too: ``state``
        reads ``error: AUTH_FAIL`` (or the other code), the
        :meth:`on_auth_error` handlers hear of it, and the outbox stays for
        the next successful ``connect``. Network failures (and a token
        function that raises, or takes over 10 s) are retried with backoff
        (``timeout`` bounds the wait; the retries go on in the background,
        as in Shotx).
        """
        if self.is_connected:
            return self.auth_data
        await self.restore()
        self._token = protocol.uuid7() if token is None else token
        if self._first is None or self._first.done():
            self._first = asyncio.get_running_loop().create_future()
        if self._loop_task is None or self._loop_task.done():
            self._loop_task = asyncio.ensure_future(self._connection_loop())
        return await _bounded(self._first, self.timeout if timeout is None else timeout, "connect")

    def on_auth_error(self, handler: Callable[[AuthError], Any] | None = None) -> Any:
        """Call ``handler(error)`` (sync or async) when the server refuses the token,
        on the first connect or on a reconnect. Usable as a call (returns self) or a decorator."""
        if handler is None:
            def decorate(fn: Callable[[AuthError], Any]) -> Callable[[AuthError], Any]:
                self.on_auth_error(fn)
                return fn
            return decorate
        if not callable(handler):
            raise TypeError("on_auth_error needs a function")
        self._auth_error_handlers.append(handler)
        return self

    async def _token_now(self) -> Any:
        """The token for this attempt: the function's answer when it is one."""
        source = self._token
        if not callable(source):
            return source
        try:
            value = source()
            return await asyncio.wait_for(value, TOKEN_TIMEOUT) if inspect.isawaitable(value) else value
        except asyncio.TimeoutError:
            raise ConnectError(f"the token function took over {TOKEN_TIMEOUT:g}s") from None
        except Exception as error:
            log.warning("the token function raised: %r", error)
            raise ConnectError(f"the token function raised: {error!r}") from error

    async def _refused(self, error: AuthError) -> None:
        self.state = f"error: {error.code}"
        log.warning("connection refused: %s (not retried; queued messages stay)", error.code)
        _settle(self._first, error)
        await call_each(self._auth_error_handlers, error, "auth error handler")

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
        await self.inbox.stop()
        await self.sender.settle()
        await self.store.close()

    async def _connection_loop(self) -> None:
        while True:
            try:
                self.state = "connecting"
                auth = await self._open_connection()
            except AuthError as error:
                return await self._refused(error)
            except Exception as error:  # network trouble, or a bug: never stop retrying silently
                if not isinstance(error, (ConnectError, OSError, asyncio.TimeoutError)):
                    log.exception("connection attempt failed")
                await self._drop_connection()
                if not self.reconnection:
                    self.state = "disconnected"
                    return _settle(self._first, error if isinstance(error, SxError) else ConnectError(str(error)))
                delay = self.backoff.next_delay()
                log.info("connect failed (%s); retrying in %.2fs", error, delay)
                await asyncio.sleep(delay)
                continue
            self.backoff.reset()
            _settle(self._first, auth)
            await self._lost.wait()
            await self._drop_connection()
            if not self.reconnection:
                self.state = "disconnected"
                return
            self.state = "connecting"
            await asyncio.sleep(self.backoff.next_delay())

    async def _open_connection(self) -> Any:
        self._lost = lost = asyncio.Event()
        authed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def on_event(name: str, payload: Any) -> None:
            if name == protocol.AUTH_SUCCESS_EVENT:
                _settle(authed, payload)
            elif name == protocol.MESSAGE_EVENT:
                self.inbox.put(payload)
            elif name == "disconnect":
                if self.state == "connected":
                    self.state = "connecting"
                lost.set()

        # ordered: our outbox keeps send order, so the server holds what follows a 2007 (server/limits.py)
        handshake = {"token": await self._token_now(), "client": self.client_id, "ordered": True}
        await self.transport.connect(self.url, self.path, handshake, on_event)
        self.auth_data = await _before_lost(authed, lost, 10, protocol.AUTH_SUCCESS_EVENT)
        self.state = "connected"
        log.info("connected to %s", self.url)
        for room in list(self.rooms.offsets):
            await self._join_now(room)
        if lost.is_set():  # it ended while we rejoined: the next connection starts over
            raise _Lost("the rejoins")
        self.sender.start(lost)
        return self.auth_data

    async def _drop_connection(self) -> None:
        """End the connection, whoever ended it. A transport reports no
        disconnect for our own ``disconnect()`` (transport.py), so the end
        is marked here, and the sender's flush ends with it."""
        self._lost.set()
        await self.sender.stop()
        try:
            await self.transport.disconnect()
        except Exception:
            log.debug("transport disconnect failed", exc_info=True)

    # ---- sending ----------------------------------------------------------------------

    async def send(self, type_: str, data: Any = None, timeout: float | None = None) -> Any:
        """Send a typed message and return the handler's result.

        Queued (and persisted) while offline, flushed in order on connect.
        Raises :class:`MessageError` with the Shotx code on an error reply,
        :class:`SxTimeoutError` when the ack takes longer than ``timeout``
        seconds after the message went out (0 waits forever), and
        :class:`OutboxFull` (nothing stored) when the outbox is at
        ``max_queued`` / ``max_queued_bytes`` or the browser's storage quota.
        A 2007 answer (a server limit) is not final: the message stays
        queued and is sent again with backoff, in order.
        """
        protocol.check_type(type_)
        return await self.emit(protocol.MESSAGE_EVENT, data, {"type": type_}, timeout=timeout)

    async def emit(self, event: str, data: Any = None, meta: dict[str, Any] | None = None,
                   timeout: float | None = None) -> Any:
        """Send a raw event with ``{meta, data}``; queued like :meth:`send`."""
        await self.restore()
        record, answered = await self.sender.enqueue(event, dict(meta or {}), data)
        return await self.sender.reply(record, answered, self.timeout if timeout is None else timeout)

    async def queue(self, type_: str, data: Any = None) -> asyncio.Future[Any]:
        """Queue a send and return once it is persisted, with a future of its result.

        For bursts: ``futures = [await client.queue("t", n) for n in range(1000)]``
        costs one store write each and no round trip; the future resolves (or
        fails with :class:`MessageError`) when the ack arrives.
        """
        protocol.check_type(type_)
        await self.restore()
        record, answered = await self.sender.enqueue(protocol.MESSAGE_EVENT, {"type": type_}, data)
        return asyncio.ensure_future(self.sender.reply(record, answered, 0))

    async def _request(self, type_: str, data: Any, timeout: float) -> Any:
        """A built-in request (join, leave): sent now, never queued."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        await self.transport.emit(protocol.MESSAGE_EVENT, protocol.request(type_, data),
                                  lambda reply: _settle(future, reply))
        return reply_data(await _bounded(future, timeout, type_))

    # ---- rooms ------------------------------------------------------------------------

    async def join(self, room: str, timeout: float | None = None) -> Any:
        """Join a room (remembered, rejoined after reconnects and reloads).

        Returns the join answer ``{room, since, head, replayed, missed, ...}``
        once the messages it replays have been handled. A gap (retention
        dropped messages we never saw, or the server's log is another history)
        also reaches the :meth:`on_gap` handlers. A join the server fails
        raises :class:`MessageError` here; the room stays joined and the
        client tries again with backoff (``leave`` stops it). A join the
        server refuses (its ``authorize_join``) raises :class:`JoinRefused`
        and the room is forgotten: it is not rejoined after reconnects.
        """
        protocol.check_room(room)
        await self.restore()
        self.rooms.join(room)
        await self.store.save_room(room, self.rooms.offsets[room], self.rooms.epochs.get(room))
        future = self._joins.get(room)
        if future is None or future.done():
            future = self._joins[room] = asyncio.get_running_loop().create_future()
        if self.is_connected:
            self._spawn(self._join_now(room, wait_handled=True))
        return await _bounded(future, self.timeout if timeout is None else timeout, protocol.JOIN)

    async def leave(self, room: str, timeout: float | None = None) -> Any:
        """Leave a room: no more messages from it, no rejoin."""
        protocol.check_room(room)
        await self.restore()
        self.rooms.leave(room)
        await self.store.remove_room(room)
        if not self.is_connected:
            return {"room": room}
        return await self._request(protocol.LEAVE, {"room": room}, self.timeout if timeout is None else timeout)

    async def _join_now(self, room: str, wait_handled: bool = False) -> None:
        """One join on this connection; a failure goes to ``join()`` and is retried in the background."""
        lost = self._lost
        try:
            answer = await self._join_once(room, wait_handled)
        except JoinRefused as refused:
            await self._forget_refused(room)
            return _settle(self._joins.pop(room, None), refused)
        except ConnectError:  # the connection ended (or was gone): join() waits on, and
            return            # the next connection rejoins the room and answers it
        except SxError as error:
            log.warning("join %s failed: %s", room, error)
            _settle(self._joins.pop(room, None), error)
            if not lost.is_set():
                self._spawn(self._retry_join(room, lost))
            return
        future = self._joins.get(room)
        if not wait_handled and future is not None and not future.done():
            self._spawn(self._settle_when_handled(room, future, answer, lost))
            return
        _settle(self._joins.pop(room, None), answer)

    async def _settle_when_handled(self, room: str, future: asyncio.Future[Any], answer: Any,
                                   lost: asyncio.Event) -> None:
        """A ``join()`` that waited across a reconnect returns once the rejoin's replay is handled,
        as ``join()`` promises. The rejoin itself does not wait: the sender starts after the
        rejoins, and a handler of the replay may await a send."""
        until = answer.get("until") if isinstance(answer, dict) else None
        if isinstance(until, int) and answer.get("replayed"):
            reached, ended = asyncio.ensure_future(self.inbox.reached(room, until)), asyncio.ensure_future(lost.wait())
            try:
                await asyncio.wait({reached, ended}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                reached.cancel()
                ended.cancel()
            if not reached.done() or reached.cancelled():
                return  # the connection ended first: the next one rejoins and answers join()
        if self._joins.get(room) is future:
            _settle(self._joins.pop(room), answer)

    async def _retry_join(self, room: str, lost: asyncio.Event) -> None:
        """Join again with backoff until it works, the room is left or the connection drops
        (then the next connection rejoins)."""
        backoff = Backoff(self.backoff.initial, self.backoff.maximum, self.backoff.randomization)
        while room in self.rooms.offsets and not lost.is_set():
            delay = backoff.next_delay()
            log.info("join %s: trying again in %.2fs", room, delay)
            try:
                await asyncio.wait_for(lost.wait(), delay)
                return
            except asyncio.TimeoutError:
                pass
            try:
                await self._join_once(room, wait_handled=False)
                log.info("join %s: joined on retry", room)
                return
            except JoinRefused:
                return await self._forget_refused(room)
            except ConnectError:
                return
            except SxError as error:
                log.warning("join %s failed again: %s", room, error)

    async def _join_once(self, room: str, wait_handled: bool) -> Any:
        timeout, lost = self.timeout or 30, self._lost
        adopted: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        # The ack goes through the inbox in wire order: the position is taken from
        # the answer before the replay that follows it is judged against it.
        request = protocol.request(protocol.JOIN, self.rooms.join_request(room))
        await self.transport.emit(protocol.MESSAGE_EVENT, request, lambda reply: self.inbox.put_answer(room, reply, adopted))
        try:
            answer = reply_data(await _before_lost(adopted, lost, timeout, protocol.JOIN))
        except MessageError as error:
            if error.code == protocol.JOIN_REFUSED:
                raise JoinRefused(error.code, error.message, error.reply) from None
            raise
        self.join_answers[room] = answer
        until = answer.get("until") if isinstance(answer, dict) else None
        if wait_handled and isinstance(until, int) and answer.get("replayed"):
            # join() returns with the replay handled. Not on rejoin, where a
            # handler awaiting a send would wait on us.
            try:
                await asyncio.wait_for(self.inbox.reached(room, until), timeout)
            except asyncio.TimeoutError:
                raise SxTimeoutError(protocol.JOIN, timeout) from None
        return answer

    async def _forget_refused(self, room: str) -> None:
        """A refused room is not rejoined: the refusal is the server's final word."""
        log.warning("join %s refused by the server: the room is forgotten and not rejoined", room)
        self.rooms.leave(room)
        await self.store.remove_room(room)

    def on_reply(self, type_: str, handler: Callable[[RestoredReply], Any] | None = None) -> Any:
        """Receive the replies of sends of ``type_`` restored from the store.

        A send queued before a reload (or a process restart with a SQLite
        store, or by another tab) is flushed on the next connection, but the
        ``send()`` that made it is gone: its reply comes here instead, as a
        :class:`RestoredReply` with the record's id, the data sent and the
        result or the error. ``handler`` may be sync or async; usable as a
        call (returns self) or as a decorator.

        >>> client = SxClient("http://localhost:3000")
        >>> @client.on_reply("create_item")
        ... def created(reply):
        ...     print(reply.id, reply.sent, reply.result if reply.error is None else reply.error)
        """
        return protocol.register_or_decorate(
            self, lambda type_, fn: self._reply_handlers.setdefault(type_, []).append(fn), type_, handler, "on_reply")

    def _restored_reply(self, record: OutboxRecord, reply: Any) -> None:
        handlers = self._reply_handlers.get(record.type)
        if not handlers:
            return
        try:
            outcome = RestoredReply(record.id, record.type, record.data, reply_data(reply), None)
        except SxError as error:
            outcome = RestoredReply(record.id, record.type, record.data, None, error)
        self._spawn(call_each(handlers, outcome, "reply handler"))

    def on_gap(self, handler: GapHandler | None = None) -> Any:
        """Call ``handler(gap)`` (sync or async) when a join finds room messages this
        client will not get: a :class:`~shotx.client.core.Gap` with the room, the
        reason (``"expired"``, ``"reset"``, ``"new_history"``) and the counts.

        It runs in order with the room's messages, before the replay that follows
        the join answer. Usable as a call (returns self) or as a decorator.
        """
        if handler is None:
            def decorate(fn: GapHandler) -> GapHandler:
                self.on_gap(fn)
                return fn
            return decorate
        if not callable(handler):
            raise TypeError("on_gap needs a function")
        self.inbox.gap_handlers.append(handler)
        return self

    def on_message(self, type_: str, handler: Handler | None = None) -> Any:
        """Handle server messages of ``type_`` with ``handler(data[, meta])``.

        Usable as a call (returns self) or as a decorator.
        """
        return protocol.register_or_decorate(self, self.inbox.on, type_, handler)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
