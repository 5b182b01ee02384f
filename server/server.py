"""SxServer: Shotx on python-socketio and aiohttp.

This is the server's glue to python-socketio and aiohttp (``packets.py``
builds the frames it sends); policy lives in ``room_policy.py`` and
``replies.py``, envelopes in ``shotx.client.protocol`` (shared with the client
so the two cannot drift).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import logging
import time
from dataclasses import dataclass
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import socketio  # type: ignore[import-untyped]
from aiohttp import web

from shotx.client import binary, protocol

from .engineio_sockets import (SocketGone, close_every_socket_now, send_soon, start_events_eagerly,
                               use_direct_sockets)
from .limits import ConnectionUse, Limits
from .memory_store import MemoryStore
from .packets import BinaryJsonText, JsonText, MalformedFrame, RoomMessageSender, SxPacket, event_text
from .replies import STORE_TIMEOUT, Refusal, Reply, ReplyMemory, ReplyText, ReplyUnknown, resend_key, run_handler
from .room_locks import DeliveryOrder, RoomLocks
from .room_policy import is_refusal, plan_join, retention_cutoff
from .socket import SxSocket
from .sqlite_store import SqliteStore
from .shared_delivery import SharedDelivery
from .store import BinaryReply, LogEntry, SharedStore, Store

log = logging.getLogger("shotx.server")

Handler = Callable[..., Any]
AuthHandler = Callable[[str, SxSocket], Any]
JoinAuthorizer = Callable[[str, SxSocket, "int | None"], Any]
F = TypeVar("F", bound=Callable[..., Any])
REPLAY_PAGE = 500
# Every SxServer attached to an application, so that run_workers can check and tag them.
SX_SERVERS = web.AppKey("shotx_servers", list)
FRAME_HEADROOM = 64  # bytes of Socket.IO framing around a message payload, with room to spare


def open_store(store: Store | str | Path, *, redis_prefix: str = "shotx") -> Store:
    """``"memory"``, a Redis URL (keys under ``redis_prefix``), a SQLite file path, or a ready :class:`Store`."""
    if isinstance(store, str) and store.startswith(("redis://", "rediss://", "unix://")):
        from .redis_store import RedisStore  # only with the redis extra installed
        return RedisStore(store, prefix=redis_prefix)
    if isinstance(store, (str, Path)):
        return MemoryStore() if str(store) == "memory" else SqliteStore(store)
    return store


async def _call(fn: Callable[..., Any], *args: Any) -> Any:
    """Handlers may be plain functions or coroutines, as in Shotx."""
    result = fn(*args)
    return await result if inspect.isawaitable(result) else result


class RoomSender:
    """What ``sx.to(room)`` returns: ``await sx.to("news").send("notification", data)``."""

    def __init__(self, server: SxServer, room: str) -> None:
        self._server = server
        self.room = protocol.check_room(room)

    async def send(self, type_: str, data: Any = None) -> dict[str, Any]:
        """Append to the room's log (durably), then broadcast; returns ``{id, offset}``."""
        return await self._server.send_to_room(self.room, type_, data)


class SxServer:
    """A Shotx server attached to an aiohttp application.

    >>> app = web.Application()
    >>> sx = SxServer(app, store="memory")
    >>> @sx.on_message("test_route")
    ... async def test_route(data, socket):
    ...     return {"status": "ok", "data": data, "auth": socket.auth}
    """

    def __init__(self, app: web.Application, *, path: str = protocol.DEFAULT_PATH,
                 cors_allowed_origins: str | list[str] | None = "*",
                 max_message_size: int = protocol.MAX_MESSAGE_SIZE,
                 store: Store | str | Path = "shotx.sqlite3",
                 retention_max_messages: int = 10_000, retention_max_age: float | None = 86_400.0,
                 retention_interval: float = 60.0, reply_window: float = 86_400.0,
                 handler_timeout: float | None = None, at_most_once: bool = False,
                 principal: Callable[[Any, SxSocket], str] | None = None, limits: Limits | None = None,
                 client_manager: Any = None, websocket_compression: bool = False,
                 store_timeout: float = STORE_TIMEOUT, **socketio_options: Any) -> None:
        if not isinstance(app, web.Application):
            raise TypeError("SxServer needs an aiohttp web.Application to attach to")
        if not isinstance(retention_max_messages, int) or retention_max_messages < 1:
            raise ValueError("retention_max_messages must be a positive integer")
        if retention_max_age is not None and retention_max_age <= 0:
            raise ValueError("retention_max_age must be positive seconds or None")
        self.app = app
        self.path = "/" + path.strip("/") + "/"
        self.store = open_store(store)
        self.retention_max_messages = retention_max_messages
        self.retention_max_age = retention_max_age
        self.retention_interval = retention_interval
        self.reply_window = reply_window
        self.handler_timeout = handler_timeout
        self.limits = limits or Limits()
        self.principal = principal or (lambda auth, socket: json.dumps(auth, sort_keys=True, default=str))
        # at_most_once: a resend whose first run may have preceded a crash gets
        # OUTCOME_UNKNOWN (2005) instead of a second run (replies.py)
        if store_timeout <= 0:
            raise ValueError("store_timeout must be positive seconds")
        # store_timeout: a reply lookup or write that takes longer is treated as failed (replies.py)
        self.replies = ReplyMemory(self.store, at_most_once=at_most_once, store_timeout=store_timeout)
        self.message_handlers: dict[str, tuple[Handler, bool]] = {}
        self.auth_handler: AuthHandler = lambda token, socket: {}
        self.join_authorizer: JoinAuthorizer | None = None
        self.sockets: dict[str, SxSocket] = {}
        self.room_locks = RoomLocks()
        self.delivery_order = DeliveryOrder()
        # Per connection, handlers start in arrival order (the outbox's order), even
        # when an earlier message first awaits its remembered reply in the store.
        self.start_order = DeliveryOrder()
        self._background_tasks: set[asyncio.Task[None]] = set()
        self._opened: asyncio.Task[None] | None = None
        self._retention_task: asyncio.Task[None] | None = None
        options = {"async_mode": "aiohttp", "cors_allowed_origins": cors_allowed_origins,
                   # the limit counts the payload; the frame around it ('42<ack>["message",...]')
                   # is longer, and aiohttp refuses a message of exactly its limit
                   "max_http_buffer_size": max_message_size + FRAME_HEADROOM, "logger": False,
                   "engineio_logger": False,
                   "serializer": SxPacket.limited(max_message_size)}
        if client_manager is not None:
            options["client_manager"] = client_manager
        self.sio = socketio.AsyncServer(**{**options, **socketio_options})
        self.sio.attach(app, socketio_path=self.path.strip("/"))
        # frames written straight to the WebSocket when nothing is queued; permessage-deflate
        # declined unless websocket_compression=True, as Node's engine.io has it (engineio_sockets.py says why)
        use_direct_sockets(self.sio.eio, compression=websocket_compression)
        self.room_messages = RoomMessageSender(self.sio)
        self.shared = (SharedDelivery(self.store, self.room_locks, self._send_to_members, self.has_members,
                                      self._send_members_away)
                       if isinstance(self.store, SharedStore) else None)
        self._shared_task: asyncio.Task[None] | None = None
        self._replies_as_text = issubclass(self.sio.packet_class, SxPacket)
        self._register_socket_events()
        self.on_message(protocol.JOIN, self._join)
        self.on_message(protocol.LEAVE, self._leave)
        app.setdefault(SX_SERVERS, []).append(self)
        app.on_startup.append(self._on_startup)
        app.on_shutdown.append(self._on_shutdown)
        app.on_cleanup.append(self._on_cleanup)

    # ---- public registration API -------------------------------------------------

    def set_auth_handler(self, handler: AuthHandler) -> SxServer:
        """Use ``handler(token, socket)`` to authenticate; returns self for chaining."""
        if not callable(handler):
            raise TypeError("Authentication handler must be a function")
        self.auth_handler = handler
        return self

    def auth(self, handler: F) -> F:
        """Decorator form of :meth:`set_auth_handler`."""
        self.set_auth_handler(handler)
        return handler

    def authorize_join(self, authorizer: JoinAuthorizer | None = None) -> Any:
        """Decide who may join which room: ``authorizer(room, socket, since)``, sync or async.

        A truthy result (JavaScript's truthiness, as for auth) lets the join
        go on; a falsy one refuses it with ``JOIN_REFUSED`` (2006): nothing
        joined, nothing replayed, and our client does not ask again. An
        authorizer that raises answers 2004 (the client retries). Without
        one, every authenticated socket may join every room. With a callable
        it registers it and returns self; without, it returns a decorator.

        >>> app = web.Application()
        >>> sx = SxServer(app, store="memory")
        >>> @sx.authorize_join
        ... def own_rooms_only(room, socket, since):
        ...     return not room.startswith("user-") or room == f"user-{socket.auth.get('user_id')}"
        """
        if authorizer is None:
            def decorate(fn: JoinAuthorizer) -> JoinAuthorizer:
                self.authorize_join(fn)
                return fn
            return decorate
        if not callable(authorizer):
            raise TypeError("authorize_join needs a function (room, socket, since)")
        self.join_authorizer = authorizer
        return self

    def on_message(self, type_: str, handler: Handler | None = None) -> Any:
        """Route messages of ``type_`` to ``handler(data, socket[, meta])``.

        With a handler: registers it and returns self (chainable). Without:
        returns a decorator.
        """
        return protocol.register_or_decorate(self, self._route, type_, handler)

    def _route(self, type_: str, handler: Handler) -> None:
        self.message_handlers[type_] = (handler, protocol.handler_arity(handler, 3) == 3)

    def to(self, room: str) -> RoomSender:
        return RoomSender(self, room)

    # ---- lifecycle ------------------------------------------------------------

    async def open(self) -> None:
        """Open the store and start retention; aiohttp start-up calls this."""
        if self._opened is None:
            self._opened = asyncio.ensure_future(self.store.open())
        await self._opened
        if self.shared is not None and self._shared_task is None:
            self._shared_task = asyncio.ensure_future(self.shared.run())
        if self._retention_task is None and self.retention_interval > 0:
            self._retention_task = asyncio.ensure_future(self._retention_loop())

    async def close(self) -> None:
        for task in (self._retention_task, self._shared_task):
            if task is not None:
                task.cancel()
        self._retention_task = self._shared_task = None
        if self._opened is not None:
            if self.shared is not None:
                await self.shared.close()  # its last delivered marks, before the store goes
            await self.store.close()
            self._opened = None

    async def _on_startup(self, app: web.Application) -> None:
        await self.open()

    async def _on_shutdown(self, app: web.Application) -> None:
        """Close every socket at once (a deploy's SIGTERM): clients notice within
        milliseconds and reconnect to the next server, as with the original."""
        closed = await close_every_socket_now(self.sio.eio)
        log.info("shutdown: closed %d sockets", closed)
        await self.sio.shutdown()

    async def _on_cleanup(self, app: web.Application) -> None:
        await self.close()

    async def apply_retention(self, now: float | None = None) -> int:
        """Drop room messages and replies past their age; returns messages dropped."""
        await self.open()
        now = time.time() if now is None else now
        await self.store.forget_replies_before(now - self.reply_window)
        cutoff = retention_cutoff(now, self.retention_max_age)
        return 0 if cutoff is None else await self.store.drop_older_than(cutoff)

    async def _retention_loop(self) -> None:
        while True:
            await asyncio.sleep(self.retention_interval)
            try:
                await self.apply_retention()
            except Exception:
                log.exception("retention pass failed")

    # ---- rooms ----------------------------------------------------------------

    async def _send_to_members(self, entry: LogEntry) -> None:
        await self.room_messages.send(entry, room=entry.room)

    async def _send_members_away(self, room: str, keep: str | None = None) -> None:
        """Disconnect this process's members of ``room`` but ``keep`` (our client reconnects and rejoins at once)."""
        for sid, _ in list(self.sio.manager.get_participants("/", room)):
            if sid != keep:
                await self.sio.disconnect(sid)

    def has_members(self, room: str) -> bool:
        return bool(self.sio.manager.rooms.get("/", {}).get(room))

    async def send_to_room(self, room: str, type_: str, data: Any) -> dict[str, Any]:
        protocol.check_room(room)
        protocol.check_type(type_)
        data_json, attachments = binary.encode(data)  # refuse what JSON cannot carry before it is logged
        await self.open()
        async with self.room_locks.hold(room):
            members = self.shared is None and self.has_members(room)  # shared: delivered from the store
            # attachments only when there are some: a Store written before bytes takes text as it did
            entry = await self.store.append(room, type_, data_json, protocol.uuid7(), time.time(), members,
                                            self.retention_max_messages,
                                            **({"attachments": attachments} if attachments else {}))
            previous, mine = self.delivery_order.take(room)
        try:  # outside the lock: sends to this room made meanwhile share the commit
            await self._deliver_in_order(entry, members, previous, mine)
        except asyncio.CancelledError:  # logged already: it must still go out, in its turn
            self._background(self._finish_delivery(entry, members, previous, mine))
            raise
        log.debug("room %s: %s at offset %d (%s)", room, type_, entry.offset, "live" if members else "stored")
        return {"id": entry.id, "offset": entry.offset}

    async def _deliver_in_order(self, entry: LogEntry, members: bool, previous: asyncio.Future[None] | None,
                                mine: asyncio.Future[None]) -> None:
        """Once committed and after the room's earlier sends, broadcast; then pass the turn on.

        A cancellation leaves the turn taken: :meth:`_finish_delivery` goes on with it.
        """
        try:
            await self.store.flushed(entry)  # its own outcome: another send's failed write is not ours
            await self.delivery_order.wait(previous)
            if members:
                await self.room_messages.send(entry, room=entry.room)
        except asyncio.CancelledError:
            raise
        except BaseException:
            self.delivery_order.done(entry.room, mine)
            raise
        self.delivery_order.done(entry.room, mine)

    async def _finish_delivery(self, entry: LogEntry, members: bool, previous: asyncio.Future[None] | None,
                               mine: asyncio.Future[None]) -> None:
        try:
            await self._deliver_in_order(entry, members, previous, mine)
        except Exception:
            log.exception("room %s: offset %d could not be delivered live", entry.room, entry.offset)
        finally:
            self.delivery_order.done(entry.room, mine)

    def _background(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._background_tasks.add(task)
        task.add_done_callback(self._background_tasks.discard)

    async def _join(self, data: Any, socket: SxSocket) -> dict[str, Any]:
        """Enter a room with its replay: the answer first, then the replay, then live messages.

        The answer goes first because a Shotx JavaScript app registers its
        handler after ``await join()`` (the original answers before the
        backlog), and the replay only once the client has read the answer
        (``_replay_after_answer``). A member with a replay catches up from the
        log: live messages of the room skip it until its replay has reached
        them, so none can overtake the replay, and the room's lock is not held
        while the client reads. A join that fails leaves no member behind that
        the replay skipped: it leaves the room again, and a replay that cannot
        be sent whole ends the connection, so that the client rejoins.
        """
        room, since, epoch = _join_request(data)
        if room not in socket.rooms and (too_many := socket.use.may_join(len(socket.rooms))) is not None:
            raise Refusal(protocol.LIMIT_EXCEEDED, too_many)
        await self._authorize(room, socket, since)
        release = await self.room_locks.acquire(room)
        entered = catching_up = False
        try:
            await self.delivery_order.settled(room)  # sends before this join are logged and out
            plan = plan_join(room, since, await self.store.bounds(room), epoch)
            first = await self.store.read(room, plan.replay_after, REPLAY_PAGE)
            replay = Replay(room, plan.head, first, more=len(first) == REPLAY_PAGE and first[-1].offset < plan.head)
            if self.shared is not None:  # before entering: it may send the room's other members away
                await self.shared.joined(room, plan.head, plan.epoch, socket.sid)
            await self.sio.enter_room(socket.sid, room)
            entered = True
            if replay.first:  # live messages skip it from now on: its replay reads them from the log
                self.room_messages.start_catch_up(room, socket.sid)
                catching_up = True
            if plan.marks_backlog_delivered:
                await self.store.mark_delivered(room, plan.head)
        except BaseException:
            if catching_up:
                self.room_messages.end_catch_up(room, socket.sid)
            if entered:
                await self.sio.leave_room(socket.sid, room)
            release()
            raise
        # python-socketio queues this answer as the handler returns, with no await in
        # between (test_join_positions.py's answer-before-backlog test holds it to that); the task
        # below starts after it.
        self._background(self._replay_after_answer(socket.sid, replay, release))
        count, until = replay.announced(plan.replay_after)
        log.info("[%s] joined %s since=%s epoch=%s replayed=%d missed=%d reset=%s", socket.sid, room, since,
                 epoch, count, plan.missed, plan.reset)
        return plan.answer(count, until)

    async def _authorize(self, room: str, socket: SxSocket, since: int | None) -> None:
        if self.join_authorizer is None:
            return
        if is_refusal(await _call(self.join_authorizer, room, socket, since)):
            raise Refusal(protocol.JOIN_REFUSED, f"Join refused: {room}")

    async def _replay_after_answer(self, sid: str, replay: Replay, release: Callable[[], None]) -> None:
        """Release the room (the answer is queued), then catch up from the replay's first page."""
        release()
        if replay.first:
            await self._catch_up(sid, replay.room, replay.first)

    async def _catch_up(self, sid: str, room: str, page: list[LogEntry]) -> None:
        """A join's replay, once the client has read the answer: ``page`` (the first, read with
        the join), then each next page once the client has taken the last (so a client that
        reads slowly holds about a page of it here, and the room's sends go on: live messages
        skip this member meanwhile, the log has them); the last few under the room's lock,
        after which the member gets live messages again, the next one after them.

        Why wait for the client first: a Node.js socket.io-client emits every
        packet of one read in one go, before an app's ``await join()`` resumes
        to register its handler; answer and replay must not arrive in one read.
        A client that does not answer within engine.io's ping interval and
        timeout is taken for gone, as engine.io takes it.

        It reads on past the join's head (what was sent meanwhile). A read that fails, or
        finds messages retention took meanwhile, closes the connection (its answer
        promised the range; the client rejoins from the offset it has handled); a socket
        that went away or left the room stops it.
        """
        caught_up, after = False, page[0].offset - 1
        try:
            await asyncio.wait_for(self.room_messages.read_so_far(sid),
                                   self.sio.eio.ping_interval + self.sio.eio.ping_timeout)
            while True:
                if not self._member(sid, room):
                    log.info("[%s] replay of %s stopped at %d: the socket left", sid, room, after)
                    return
                for entry in page:
                    await self.room_messages.send(entry, sid=sid)
                after = page[-1].offset
                await self.room_messages.drained(sid)
                page = await self._read_on(room, after)
                if len(page) < REPLAY_PAGE:
                    break  # the last few: read again, and sent, under the room's lock
            async with self.room_locks.hold(room):
                await self.delivery_order.settled(room)  # live sends so far are out (they skipped it)
                while True:
                    page = await self._read_on(room, after)
                    for entry in page:
                        await self.room_messages.send(entry, sid=sid)
                    after = page[-1].offset if page else after
                    if len(page) < REPLAY_PAGE:
                        break
                self.room_messages.end_catch_up(room, sid)  # under the lock: live from the next send on
                caught_up = True
        except SocketGone:  # it rejoins from the offset it has handled
            return
        except Exception as error:
            log.warning("[%s] replay of %s stopped at %d (%s: %s); its connection is closed, so that it "
                        "joins again from there", sid, room, after, type(error).__name__, error)
            await self._end_connection(sid)
        finally:
            if not caught_up:
                self.room_messages.end_catch_up(room, sid)

    async def _read_on(self, room: str, after: int) -> list[LogEntry]:
        """A catch-up's next page; :class:`RetainedPast` if retention dropped messages after
        ``after`` meanwhile (they skipped this member live, and the log no longer has them).

        Why not read on: the client would take the next offset and step over
        the hole for good, and nobody would know. Its connection is closed
        instead; it rejoins from what it has handled, and the rejoin's answer
        counts them as ``missed`` (the client's ``on_gap``).
        """
        page = await self.store.read(room, after, REPLAY_PAGE)
        if not page or page[0].offset > after + 1:  # a hole: a failed append's offset, or retention
            floor = (await self.store.bounds(room)).floor
            if floor > after:
                raise RetainedPast(f"retention dropped offsets {after + 1}..{floor} before this member read them")
        return page

    def _member(self, sid: str, room: str) -> bool:
        return self.sio.manager.is_connected(sid, "/") and room in self.sio.manager.get_rooms(sid, "/")

    async def _leave(self, data: Any, socket: SxSocket) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise Refusal(protocol.HANDLER_ERROR, "Invalid leave: data must be an object with a room")
        room = _checked(protocol.check_room, data.get("room"))
        await self.sio.leave_room(socket.sid, room)
        if self.shared is not None:
            await self.shared.forget(room)
        log.info("[%s] left %s", socket.sid, room)
        return {"room": room}

    # ---- connections and messages --------------------------------------------

    def _register_socket_events(self) -> None:
        self.sio.on("connect", self._on_connect)
        self.sio.on("disconnect", self._on_disconnect)
        on_message = self._on_message  # one bound method: start_events_eagerly knows it by identity
        self.sio.on(protocol.MESSAGE_EVENT, on_message)
        self.sio.on("*", self._on_other_event)
        # handlers started in the reader's turn; `message` answered without python-socketio's dispatch
        start_events_eagerly(self.sio, direct={protocol.MESSAGE_EVENT: on_message})

    async def _on_other_event(self, event: str, sid: str, *args: Any) -> Reply:
        """python-socketio acks no event without a handler: its sender would wait for ever."""
        return protocol.failure(protocol.INVALID_FORMAT, f"Invalid message format: unknown event {event!r:.100}")

    def _client_event(self, sid: str, event: str) -> Reply | None:
        """The refusal of an ordinary event a client named ``connect`` or ``disconnect``, or None.

        python-socketio dispatches those to the lifecycle handlers too, so a
        socket could run the handshake's authentication again with arguments
        (an environ, a token) of its own choosing and take another identity.
        The real lifecycle events run while the socket is pending (connecting
        or disconnecting), when the manager does not count it as connected;
        a client's own events only reach us once it is, and get a 2001.
        """
        if not self.sio.manager.is_connected(sid, "/"):
            return None
        log.warning("[%s] refused a client event named %r", sid, event)
        return protocol.failure(protocol.INVALID_FORMAT,
                                f"Invalid message format: a client may not send an event named {event!r}")

    async def _on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> Reply | None:
        if (refusal := self._client_event(sid, "connect")) is not None:
            return refusal
        socket = SxSocket(sid, environ, auth if isinstance(auth, dict) else {}, self.sio)
        token = socket.handshake.get("token")
        if not token:
            log.warning("[%s] AUTH_NULL: no token", sid)
            raise socketio.exceptions.ConnectionRefusedError(protocol.AUTH_NULL)
        try:
            result = await _call(self.auth_handler, token, socket)
        except Exception:
            log.exception("[%s] AUTH_ERROR", sid)
            raise socketio.exceptions.ConnectionRefusedError(protocol.AUTH_ERROR) from None
        if is_refusal(result):
            log.warning("[%s] AUTH_FAIL", sid)
            raise socketio.exceptions.ConnectionRefusedError(protocol.AUTH_FAIL)
        socket.auth = result
        try:
            socket.principal = self.principal(result, socket)
            socket.resend_key = resend_key(socket.principal, socket.handshake.get("client"), sid)
            # auth.ordered: the client keeps its sends in order and sends a refused one again (limits.py)
            socket.use = ConnectionUse(self.limits, ordered=socket.handshake.get("ordered") is True)
        except Exception:  # a principal function that fails is an auth failure of ours
            log.exception("[%s] AUTH_ERROR: principal", sid)
            raise socketio.exceptions.ConnectionRefusedError(protocol.AUTH_ERROR) from None
        self.sockets[sid] = socket
        # python-socketio queues CONNECT once this returns, with no await in between,
        # so what is sent in the next turn goes right after it: auth_success, as Shotx sends it.
        encoded = event_text(protocol.AUTH_SUCCESS_EVENT, result) if self.room_messages.writes_frames else None
        if encoded is not None:
            send_soon(self.sio, sid, encoded)
        else:  # another serializer or manager, or auth data event_text leaves to emit (bytes, a tuple...)
            self.sio.start_background_task(self.sio.emit, protocol.AUTH_SUCCESS_EVENT, result, to=sid)
        return None

    async def _on_disconnect(self, sid: str, reason: Any = None) -> Reply | None:
        if (refusal := self._client_event(sid, "disconnect")) is not None:
            return refusal
        socket = self.sockets.pop(sid, None)
        if socket is not None and self.shared is not None:
            # python-socketio takes the socket out of its rooms right after this handler,
            # with no await in between: the task runs once it has
            self._background(self._forget_rooms(socket.rooms))
        return None

    async def _forget_rooms(self, rooms: list[str]) -> None:
        for room in rooms:
            await self.shared.forget(room)  # type: ignore[union-attr]

    async def _refuse_frame(self, sid: str, frame: MalformedFrame) -> Reply | None:
        """A frame packets.py could not decode: a 2001 when it has an ack id to answer, else a clean close."""
        log.warning("[%s] refused a frame: %s", sid, frame.reason)
        if frame.answerable:
            return protocol.failure(protocol.INVALID_FORMAT, f"Invalid message format: {frame.reason}")
        await self._end_connection(sid)  # nobody to answer
        return None

    async def _end_connection(self, sid: str) -> None:
        """Close the socket's Engine.IO connection: a client (ours, or socket.io-client) sees a
        transport close, reconnects and sends again whatever was not acknowledged."""
        eio_sid = self.sio.manager.eio_sid_from_sid(sid, "/")
        if eio_sid is not None:  # None: gone already (and Engine.IO's disconnect(None) closes everyone)
            await self.sio.eio.disconnect(eio_sid)

    async def _on_message(self, sid: str, message: Any = None, *extra: Any) -> Reply | JsonText | None:
        if isinstance(message, MalformedFrame):
            return await self._refuse_frame(sid, message)
        if extra:  # python-socketio would raise TypeError calling us, and send no ack
            return protocol.failure(protocol.INVALID_FORMAT,
                                    f"Invalid message format: one argument expected, got {1 + len(extra)}")
        socket = self.sockets.get(sid)
        checked = protocol.check_request(message)
        if isinstance(checked, dict):
            return checked
        if socket is None:
            code = protocol.JOIN_REFUSED if checked[0] == protocol.JOIN else protocol.HANDLER_ERROR
            return protocol.failure(code, "Not authenticated")
        type_, data, meta = checked
        found = self.message_handlers.get(type_)
        if found is None:
            return protocol.unknown_type(type_)
        refused = socket.use.admit(time.monotonic(), protocol.message_id(type_, meta))
        if refused is not None:
            log.info("[%s] %s: %s", sid, type_, refused)
            return protocol.failure(protocol.LIMIT_EXCEEDED, refused)
        try:
            return await self._handle(socket, found, type_, data, meta)
        finally:
            socket.use.finished()

    async def _handle(self, socket: SxSocket, found: tuple[Handler, bool], type_: str, data: Any,
                      meta: dict[str, Any]) -> Reply | JsonText | None:
        sid = socket.sid
        handler, takes_meta = found
        run = functools.partial(run_handler, handler, (data, socket, meta) if takes_meta else (data, socket),
                                self.handler_timeout, sid, type_)
        previous, mine = self.start_order.take(sid)  # on arrival, before any await

        async def run_in_turn() -> ReplyText:
            await self.start_order.wait(previous)  # earlier messages of this connection started
            if socket.ending:  # an earlier one was not answered: running this now would overtake it
                raise ReplyUnknown("an earlier message of this connection could not be answered")
            self.start_order.done(sid, mine)
            return await run()

        message_id = protocol.message_id(type_, meta)
        try:
            if message_id is None:
                text = await run_in_turn()
            else:
                text = await self.replies.once(socket.resend_key, message_id, run_in_turn,
                                               resent=bool(meta.get("resend")))
        except ReplyUnknown as error:
            log.warning("[%s] %s %s: not answered (%s); its connection is closed, so that it comes again",
                        sid, type_, message_id, error)
            socket.ending = True  # before its turn passes on: nothing behind it runs
            self.start_order.done(sid, mine)  # before the close: the turn never waits on it
            await self._end_connection(sid)
            return None  # python-socketio's ack to a closed connection goes nowhere
        finally:
            self.start_order.done(sid, mine)
        # python-socketio sends a JsonText as it is (see packets.py); another serializer needs the value
        if isinstance(text, BinaryReply):
            return (BinaryJsonText(text.json, text.attachments) if self._replies_as_text
                    else binary.decode(text.json, text.attachments))
        return JsonText(text) if self._replies_as_text else json.loads(text)


class RetainedPast(Exception):
    """Retention dropped room messages a catching-up member had not read yet."""


@dataclass(frozen=True)
class Replay:
    """A join's replay: its first page, read before the answer, and whether more follow
    (``SxServer._catch_up`` reads them once the client has taken the first)."""

    room: str
    head: int
    first: list[LogEntry]
    more: bool

    def announced(self, after: int) -> tuple[int, int | None]:
        """The answer's ``replayed`` and ``until``: the first page's, or the whole range's
        (the replay then goes on past it with what was sent meanwhile). The count is what
        the log held at the join: an append whose write failed leaves its offset out, and
        retention may drop the oldest meanwhile; ``until`` is the join's head.

        >>> Replay("r", 1200, [LogEntry("r", n, "i", "t", "{}", 0.0) for n in (1, 2)], more=True).announced(0)
        (1200, 1200)
        >>> Replay("r", 9, [], more=False).announced(4)
        (0, None)
        """
        if self.more:
            return self.head - after, self.head
        return len(self.first), self.first[-1].offset if self.first else None


def _checked(check: Callable[[Any], Any], value: Any) -> Any:
    """A built-in's argument check: bad input is an expected refusal (one log line), not a crash."""
    try:
        return check(value)
    except ValueError as error:
        raise Refusal(protocol.HANDLER_ERROR, str(error)) from None


def _join_request(data: Any) -> tuple[str, int | None, str | None]:
    """``sx_join``'s room, since and epoch, or a :class:`Refusal` that says what is wrong."""
    if not isinstance(data, dict):
        raise Refusal(protocol.HANDLER_ERROR, "Invalid join: data must be an object with a room")
    return (_checked(protocol.check_room, data.get("room")), _checked(protocol.check_offset, data.get("since")),
            _checked(protocol.check_epoch, data.get("epoch")))
