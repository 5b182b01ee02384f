"""What SxServer does to python-engineio's sockets that its public API does not offer.

The one module that touches python-engineio's socket internals (and python-socketio's
event dispatch; and the ``generate_id`` engine.io's handshake calls for a new session's id);
``tests/unit/test_engineio_sockets.py`` fails loudly when the pinned version
(python-engineio 4.15.1, aiohttp 3.14) changes what it relies on.

**Shutdown.** On shutdown engine.io's ``close()`` sends a CLOSE packet and
leaves the WebSocket open. The JavaScript client ignores a CLOSE packet on a
WebSocket (it only honours it on long-polling), so a page stayed on a dead
socket until its ping timeout (45 s) and the server waited as long for its
writers. The original Shotx server (Node) closes its connections when it
exits, and pages reconnect at once. Ending each socket's writer after its
CLOSE packet makes the writer close the WebSocket itself (a close frame,
which every client notices), and a long-poll waiting for packets gets the
CLOSE packet.

**The WebSocket fast path** (issue 10). python-engineio puts every packet it
sends into the socket's queue, where a writer task wakes up for it (a task
step and a ``wait_for`` timer per frame: about 45 % of a room delivery's
CPU), reads every frame received in a new task under ``wait_for``, and its
aiohttp driver calls ``inspect.iscoroutinefunction`` on every send. aiohttp
also accepts the permessage-deflate that socket.io-client offers, which
Node's engine.io declines by default (a delivery costs about 31 % less
without it). :class:`DirectSocket` is engine.io's ``AsyncSocket`` with its
WebSocket transport replaced:

* a packet is written to the WebSocket at once, in the sender's own step,
  when nothing can be ahead of it: the queue is empty, the writer is not
  mid-batch, the socket is not closing, and the transport's buffer is empty.
  A frame of up to 16 KiB then goes whole into the transport, built once for
  every member it goes to (:func:`text_frame`); a larger one takes aiohttp's
  write in an eager task of its own, so a write that waits for a drain never
  holds up the sender (a slow client never holds up a room's other members).
  Otherwise the packet goes to the queue as before, and the writer sends it
  in order. Frame order per socket is
  therefore unchanged (aiohttp puts a frame whole into the transport before
  it waits). Room messages delivered in one loop turn (a burst) go to each
  member in two writes, its first frame at once and the rest at the turn's
  end (:class:`TurnWrites`), not in a ``send()`` system call per message.
  Only without compression: compressed one frame at a time, a room delivery
  cost more CPU (34 against 24 µs) than through engine.io's writer, which
  compresses a burst's frames in one wake-up;
* the reader awaits aiohttp's ``receive()`` itself: no task per frame, and
  no timer per frame either (one per connection, :class:`_Silence`, ends a
  connection silent for ``ping_interval + ping_timeout`` as engine.io's
  per-frame timeout did); a Socket.IO frame goes straight to python-socketio's
  handler, without engine.io's Packet and ``_trigger_event`` around it;
* permessage-deflate is declined, as Node's engine.io declines it, unless
  ``SxServer(websocket_compression=True)`` (aiohttp's default). Uncompressed,
  a Node.js socket.io-client may get a join's answer and its replay in one
  read and emit them in one go, before an app's ``await join()`` resumes to
  register its handler (one long-poll can carry both too): so the replay
  waits for the client's answer to a ping sent behind the join's answer
  (:meth:`DirectSocket.round_trip`).

**Closed sockets freed at once** (issue 10 point 3). engine.io kept every
closed socket alive for up to 25 s (its ping task sleeps ``ping_interval``
and is never cancelled: :class:`DirectSocket` cancels it on close) and up
to 20 s (its service task walks a copy of every socket for a whole
``ping_timeout``: ours walks the sids). Every disconnect is counted for
``memory_release.py``, which gives freed memory back to the system after many.

Long-polling and the upgrade from it are engine.io's own, unchanged.
:func:`use_direct_sockets` makes every new Engine.IO socket of a server a
:class:`DirectSocket` (at the Engine.IO ``connect`` event, before its
transport starts); :func:`send_to_many` writes one room message, encoded
once, to every member.
"""

from __future__ import annotations

import asyncio
import inspect
import struct
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any

from aiohttp import WSMsgType, web
from engineio import exceptions, packet  # type: ignore[import-untyped]
from engineio.async_socket import AsyncSocket  # type: ignore[import-untyped]
from socketio import packet as socketio_packet  # type: ignore[import-untyped]

from .memory_release import MemoryRelease
from .sticky import tagged_sid


async def close_every_socket_now(eio: Any) -> int:
    """Close every Engine.IO socket without waiting for any of them; returns how many.

    Each gets its disconnect event and a CLOSE packet (which a pending
    long-poll returns), then ``None`` in its queue: engine.io's WebSocket
    writer (and ours) stops at ``None`` and closes the WebSocket. A writer
    blocked on a client that stopped reading never gets there; aiohttp's
    shutdown timeout ends that connection.
    """
    sockets = list(eio.sockets.values())
    for socket in sockets:
        await socket.close(wait=False, abort=False)
    for socket in sockets:
        # a DirectSocket on a WebSocket has one queued by its close already; a second is never
        # taken (its writer stops at the first) and nothing joins that queue: harmless
        socket.queue.put_nowait(None)
    return len(sockets)


class DirectSocket(AsyncSocket):  # type: ignore[misc]
    """engine.io's socket whose WebSocket writes go straight out when nothing is queued (see the module)."""

    # engine.io's own attributes (BaseSocket.__init__), typed for mypy
    server: Any
    sid: str
    queue: asyncio.Queue[Any]
    connected: bool
    upgraded: bool
    upgrading: bool
    closing: bool
    closed: bool
    last_ping: float | None

    compress = False
    # Set once the WebSocket is the transport and its writer runs; None again when the writer stops.
    _ws: web.WebSocketResponse | None = None
    _writer: asyncio.Task[None] | None = None  # the WebSocket's writer, once it runs (None: long-polling)
    _batch_written: asyncio.Event  # set by the writer after each batch and when it stops (made with it)
    _transport: asyncio.Transport | None = None
    _writing = False  # the writer holds packets taken from the queue and not all written yet
    _ping: asyncio.Task[None] | None = None  # the pending ping (asleep for ping_interval), cancelled on close
    _draining: set[asyncio.Task[None]]  # direct writes waiting for the client to drain (kept from the GC)
    _pings_sent = 0  # PING packets sent (engine.io's and round_trip's), and PONGs received: the client
    _pongs_received = 0  # answers every ping, in order, so the nth pong answers the nth ping
    _pong_waiters: list[tuple[int, asyncio.Future[None]]] | None = None  # (the pong's number, its waiter)
    _pending: list[bytes] | None = None  # whole frames of this loop turn's room messages, written at its end

    def schedule_ping(self) -> None:
        """engine.io's, keeping the ping task so that :meth:`close` can end its sleep.

        engine.io's ``_send_ping`` sleeps ``ping_interval`` (25 s) first and
        is never cancelled: every closed socket (its queue, its event, what
        its handler's frames hold) stayed alive until it woke.
        """
        if self.last_ping:
            self.last_ping = None
            self._ping = self.server.start_background_task(self._send_ping)

    async def close(self, wait: bool = True, abort: bool = False, reason: Any = None) -> None:
        """engine.io's close, never waiting for a writer that has stopped; then the pending
        ping's sleep cancelled (unless the ping is what closes), a waiting :meth:`round_trip`
        ended and a pending long-poll answered; a WebSocket the server closes is closed too.

        engine.io's server-side close (``eio.disconnect``, what SxServer does to a
        connection it cannot answer) sent the CLOSE packet and left the WebSocket open.
        socket.io-client honours a CLOSE packet only on long-polling, so a JavaScript
        client (the browser client too) sat on the dead socket until its ping timeout
        (45 s) before it reconnected and sent again; Node's engine.io closes the transport.

        engine.io's ``close(wait=True)`` (what ``disconnect(sid)`` does) queues a CLOSE
        packet and waits until the queue is written out. When the connection had just
        dropped, its writer could have stopped already (it stops at the ``None`` the reader
        queues, or at a failed write) while the reader had not yet closed the socket: the
        CLOSE packet then stayed queued and the close waited for ever. The Redis-restart
        fault test hung that way (a resend that could not be answered ends its connection
        while the proxy cuts it): the waiting message held its connection's turn, so the
        messages behind it never ran and their client, on a new connection, waited for them.
        """
        closing_now = not self.closed and not self.closing  # a second close returns at once, as engine.io's
        await super().close(wait=False, abort=abort, reason=reason)
        self._end_round_trips()
        if not abort and closing_now and self._writer is not None:
            # the server ends the connection (``eio.disconnect``): the writer stops after the CLOSE
            # packet and closes the WebSocket, which every client notices (see the module docstring)
            self.queue.put_nowait(None)
        if abort and closing_now and self._writer is None:
            # long-polling: engine.io answered a pending poll only at its timeout (45 s), which
            # kept a closed Node.js client's process alive; Node's engine.io answers it at once
            self.queue.put_nowait(None)
        if wait and closing_now:
            await self._written_out()
        ping, self._ping = self._ping, None
        if ping is not None and ping is not asyncio.current_task():
            ping.cancel()

    async def _written_out(self) -> None:
        """Until the queue is written out, or its WebSocket writer has stopped (what is left is never sent)."""
        writer = self._writer
        if writer is None:  # long-polling: engine.io's own wait (a poll takes the packets)
            await self.queue.join()
            return
        joined = asyncio.ensure_future(self.queue.join())
        try:
            await asyncio.wait({joined, writer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            joined.cancel()

    async def round_trip(self) -> None:
        """Send a PING and return once the client has answered it (:class:`SocketGone` if it goes first).

        Why: a client answers a ping when it reads it, so its PONG proves that
        it has read and dispatched everything sent before the ping. A join's
        replay goes out only then, never in the same read as the join's answer:
        a Node.js socket.io-client (on an uncompressed WebSocket, or one
        long-poll) emits every packet of one read in one go, before the app's
        ``await join()`` has resumed to register its handler (the original
        Shotx's room demo does that). A PING the client did not expect is
        harmless: Engine.IO v4 clients answer every ping.
        """
        if self.closed or self.closing:
            raise SocketGone("the socket is closed")
        waiter = asyncio.get_running_loop().create_future()
        if self._pong_waiters is None:
            self._pong_waiters = []
        self._pong_waiters.append((self._pings_sent + 1, waiter))
        try:
            await self.send(packet.Packet(packet.PING))
            await waiter
        finally:
            self._pong_waiters = [pair for pair in self._pong_waiters or () if pair[1] is not waiter] or None

    async def receive(self, pkt: Any) -> None:
        """engine.io's, counting the client's PONGs for :meth:`round_trip`."""
        if pkt.packet_type == packet.PONG:
            self._pongs_received += 1
            for number, waiter in self._pong_waiters or ():
                if number <= self._pongs_received and not waiter.done():
                    waiter.set_result(None)
        await super().receive(pkt)

    def _end_round_trips(self) -> None:
        for _, waiter in self._pong_waiters or ():
            if not waiter.done():
                waiter.set_exception(SocketGone("the socket closed before the client answered a ping"))

    def may_write_now(self) -> bool:
        """Whether a packet written now cannot overtake another or wait for the client."""
        transport, ws = self._transport, self._ws
        return (ws is not None and not ws.closed and not self._writing and not self.closing and not self.closed
                and self.queue.empty() and transport is not None and transport.get_write_buffer_size() == 0
                and not transport.is_closing()
                and not (self.last_ping and time.time() - self.last_ping > self.server.ping_timeout))

    async def send(self, pkt: Any) -> None:
        """Send a packet: at once when :meth:`may_write_now`, else through engine.io's queue."""
        if pkt.packet_type == packet.PING:
            self._pings_sent += 1
        if self.may_write_now():
            self.write_now(pkt.encode())
        else:
            await super().send(pkt)

    def write_now(self, data: str | bytes) -> None:
        """Write an encoded packet (text, or bytes of a binary one); only when :meth:`may_write_now`."""
        assert self._ws is not None
        if isinstance(data, str) and len(data) <= WHOLE_FRAME_MAX:
            self.write_text_frame(data.encode("utf-8"))
        else:
            self._write_eagerly(self._ws.send_str(data) if isinstance(data, str) else self._ws.send_bytes(data))

    def write_text_frame(self, payload: bytes, frame: bytes | None = None, *, gather: bool = False) -> None:
        """Write a text frame's UTF-8 bytes, encoded once for many sockets; only when :meth:`may_write_now`.

        A small frame (``frame``: the whole frame, made once by :func:`text_frame` for every
        socket it goes to) goes straight into the transport, whose buffer is empty: there is no
        drain to wait for. A large one goes through aiohttp's write, which waits for the drain.

        ``gather`` (a room message): the first such frame of a loop turn is written at once,
        and every later frame of the same turn waits for one write at the turn's end
        (:meth:`_write_gathered`). A burst of room messages then costs each member two
        ``send()`` system calls, not one per message (that call was 61 % of a delivery's
        CPU), and a lone message goes out as soon as before. While frames are gathered,
        every frame written to the socket joins them, so none overtakes another.
        """
        assert self._ws is not None and self._transport is not None
        if frame is None and len(payload) <= WHOLE_FRAME_MAX:
            frame = text_frame(payload)
        if frame is None:
            self._write_eagerly(self._ws.send_frame(payload, WSMsgType.TEXT))
        elif self._pending is not None:
            self._pending.append(frame)
        else:
            self._transport.write(frame)
            if gather:
                self._pending = []
                self.server.shotx_turn_writes.add(self)

    def _write_gathered(self) -> None:
        """Write the frames :meth:`write_text_frame` gathered, in one call (also before any other write).

        Runs before any packet queued meanwhile is written: a packet is queued only
        after the frames began to gather, and the writer's wake-up comes after the
        turn's callback (:class:`TurnWrites`) in the loop's queue; every direct write
        comes here first.
        """
        pending, self._pending = self._pending, None
        transport = self._transport
        if pending and transport is not None and not transport.is_closing():
            transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def _write_eagerly(self, write: Coroutine[Any, Any, None]) -> None:
        """Run aiohttp's write now; if it then waits for the client to drain, it waits in a task of its own.

        aiohttp puts the whole frame into the transport before it waits for a
        drain, so nothing written later can overtake it, and the sender (a
        room's fan-out) is never held up by one client that stopped reading.
        A write that completes at once (the usual case) costs no loop step.
        """
        self._write_gathered()  # aiohttp writes into the transport at once: what was gathered goes first
        task = asyncio.Task(write, loop=asyncio.get_running_loop(), eager_start=True)
        if task.done():
            self._written(task)
        else:
            self._draining.add(task)
            task.add_done_callback(self._written)

    def _written(self, task: asyncio.Task[None]) -> None:
        self._draining.discard(task)
        if not task.cancelled() and task.exception() is not None:  # going: the writer closes, the reader notices
            self._ws = None
            self.queue.put_nowait(None)

    async def _upgrade_websocket(self, environ: dict[str, Any]) -> web.WebSocketResponse:
        """engine.io's, with aiohttp's WebSocket made here: compression as configured."""
        if self.upgraded:
            raise OSError("Socket has been upgraded already")
        request = environ["aiohttp.request"]
        ws = web.WebSocketResponse(max_msg_size=self.server.max_http_buffer_size, compress=self.compress)
        await ws.prepare(request)
        await self._websocket_handler(ws, request.transport)
        return ws

    async def _websocket_handler(self, ws: web.WebSocketResponse, transport: Any = None) -> None:
        """Engine.IO over a WebSocket: the upgrade probe if polling came first, then read until it ends."""
        if self.connected:
            if not await self._finish_upgrade(ws):
                return
        else:
            self.connected = True
            self.upgraded = True
        self._batch_written, self._draining = asyncio.Event(), set()
        writer = self._writer = asyncio.ensure_future(self._write_queued(ws))
        if not ws.compress:  # compressed, one frame at a time cost more than engine.io's batches (measured)
            self._transport, self._ws = transport, ws
        await self._read(ws, transport)
        self._ws = None
        await self.queue.put(None)  # the writer stops after what was queued before
        await writer
        _drop_tracebacks(ws.exception())
        await self.close(wait=False, abort=True, reason=self.server.reason.TRANSPORT_CLOSE)

    async def _receive_text(self, ws: web.WebSocketResponse) -> str | bytes | None:
        """The next frame's data, or None when the connection ended or failed."""
        try:
            message = await ws.receive()
        except (asyncio.CancelledError, Exception):  # engine.io ends the connection on these too
            return None
        data = message.data
        if not isinstance(data, (str, bytes)) or len(data) > self.server.max_http_buffer_size:
            return None
        return data

    async def _finish_upgrade(self, ws: web.WebSocketResponse) -> bool:
        """engine.io's upgrade from long-polling: ping ``probe``, pong, then UPGRADE; packets held meanwhile."""
        self.upgrading = True
        data = await self._receive_text(ws)
        probe = packet.Packet(encoded_packet=data) if data else None
        if probe is None or probe.packet_type != packet.PING or probe.data != "probe":
            self.server.logger.info("%s: Failed websocket upgrade, no PING packet", self.sid)
            self.upgrading = False
            return False
        await ws.send_str(packet.Packet(packet.PONG, data="probe").encode())
        await self.queue.put(packet.Packet(packet.NOOP))  # ends the pending long-poll
        data = await self._receive_text(ws)
        if not data or packet.Packet(encoded_packet=data).packet_type != packet.UPGRADE:
            self.server.logger.info("%s: Failed websocket upgrade, expected UPGRADE packet", self.sid)
            self.upgraded = self.upgrading = False
            return False
        self.upgraded, self.upgrading = True, False
        return True

    async def _read(self, ws: web.WebSocketResponse, transport: Any) -> None:
        """Receive frames until the client goes (or sends nothing for a ping interval and timeout).

        A Socket.IO frame (an Engine.IO MESSAGE: ``4`` and a digit) goes straight
        to python-socketio's Engine.IO ``message`` handler, as engine.io's
        ``receive`` would pass it, without the Packet and ``_trigger_event``
        around it; every other frame takes engine.io's ``receive``.
        """
        silence = _Silence(transport, self.server.ping_interval + self.server.ping_timeout)
        on_message = self.server.handlers.get("message")
        if not inspect.iscoroutinefunction(on_message):
            on_message = None
        events: _Events | None = getattr(self.server, "shotx_events", None)
        if events is not None and on_message != events.on_message:  # python-socketio's handler was replaced
            events = None
        try:
            while True:
                data = await self._receive_text(ws)
                silence.heard()
                if data is None:
                    return
                if on_message is not None and type(data) is str and len(data) > 1 and data[0] == "4" \
                        and data[1].isnumeric():
                    try:  # as engine.io's run_async_handler: an error is logged, the reading goes on
                        if events is not None and data[1] == "2" and self.sid not in events.binary_packets:
                            # a Socket.IO EVENT: what python-socketio's _handle_eio_message does with it
                            pkt = events.packet_class.incoming(data[1:])
                            events.dispatch(self.sid, pkt.namespace, pkt.id, pkt.data)
                        else:
                            await on_message(self.sid, data[1:])
                    except asyncio.CancelledError:
                        pass
                    except Exception:
                        self.server.logger.exception("message async handler error")
                    continue
                try:
                    pkt = packet.Packet(encoded_packet=data)
                except Exception as error:  # engine.io let this escape, leaving the socket open (a ghost)
                    self.server.logger.warning("%s: closing on an undecodable frame (%s)", self.sid, error)
                    return
                try:
                    await self.receive(pkt)
                except exceptions.UnknownPacketError:
                    pass
                except exceptions.SocketIsClosedError:
                    self.server.logger.info("Receive error -- socket is closed")
                    return
                except Exception:  # engine.io logs it and goes on reading
                    self.server.logger.exception("Unknown receive error")
        finally:
            silence.stop()

    async def _write_queued(self, ws: web.WebSocketResponse) -> None:
        """Write queued packets in order until ``None`` (or a failed write), then close the WebSocket.

        No timeout, unlike engine.io's writer: writes that go straight out
        leave the queue empty for as long as the connection lives; the
        reader's timeout ends a silent connection, and it queues ``None``.
        """
        while True:
            batch = await self._take_batch()
            self._writing = True
            try:
                for pkt in batch:
                    if pkt is None:
                        break
                    data = pkt.encode()
                    await (ws.send_str(data) if isinstance(data, str) else ws.send_bytes(data))
            except Exception:
                batch = [None]
            finally:
                self._writing = False
                self._batch_written.set()
            if batch and batch[-1] is None:
                break
        self._ws = None
        self._batch_written.set()  # stopped: nobody waits for it any more
        await ws.close()

    async def drained(self) -> None:
        """Return once what this socket was given is written to its WebSocket, with the
        transport under its high-water mark (aiohttp waits for the client to read below
        it), or the socket closed.

        What a caller sends faster than the client reads waits in the socket's queue or
        the transport's buffer, without bound: a long replay awaits this between pages
        so that a client that reads slowly (or not at all) holds about a page of it.
        """
        self._write_gathered()  # into the transport now: its buffer then tells whether the client keeps up
        while not self.closed and self._writer is not None and not self._writer.done():
            if self._draining:  # direct writes waiting for the client to read
                await asyncio.wait(set(self._draining))
            elif self._writing or not self.queue.empty():
                self._batch_written.clear()
                await self._batch_written.wait()
            else:
                return

    async def _take_batch(self) -> list[Any]:
        """Every packet queued now (waiting for the first), up to and including a ``None``."""
        batch = [await self.queue.get()]
        self.queue.task_done()
        while batch[-1] is not None and not self.queue.empty():
            batch.append(self.queue.get_nowait())
            self.queue.task_done()
        return batch


def _drop_tracebacks(error: BaseException | None) -> None:
    """Let a closed connection go by reference counting, not at the next full collection.

    When a client closes its TCP connection, aiohttp's ``receive`` answers the
    EOF by sending a close frame, which fails on the closing transport; the
    WebSocket keeps that error (``ws.exception()``), whose traceback (and its
    context's, the EOF) holds the frames of the WebSocket's own methods: a
    cycle through the request, the WebSocket and our socket, about 90 objects
    per connection that only the garbage collector's oldest generation freed
    (a third of a connect's CPU, in collections of up to 330 ms).
    """
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        error.__traceback__ = None
        error = error.__context__ or error.__cause__


class TurnWrites:
    """The sockets that gathered frames in this loop turn, written by one callback at its end.

    One callback per turn for all of them, not one per socket: a lone room
    message to 1,000 members then costs a list append per member.
    """

    def __init__(self) -> None:
        self._sockets: list[DirectSocket] = []

    def add(self, socket: DirectSocket) -> None:
        if not self._sockets:
            asyncio.get_running_loop().call_soon(self._write_all)
        self._sockets.append(socket)

    def _write_all(self) -> None:
        sockets, self._sockets = self._sockets, []
        for socket in sockets:
            try:  # one socket's failure must not leave the others gathering with nobody to write
                socket._write_gathered()
            except Exception:
                socket.server.logger.exception("%s: writing the gathered frames failed", socket.sid)


class _Silence:
    """Aborts a connection whose client has sent nothing for ``timeout`` seconds.

    engine.io gives every frame's ``receive`` a timeout (a ``wait_for`` or
    ``asyncio.timeout`` per frame: about 8 % of an ack's CPU). This is one
    timer per connection that re-arms itself lazily: a frame only notes the
    time, and when the timer fires after a frame it sleeps on to that frame's
    deadline. Aborting the transport ends the pending ``receive`` as a
    dropped connection does, and the socket closes the same way. Only frames
    count: a WebSocket-level ping, which aiohttp answers inside ``receive``,
    restarted engine.io's timeout and does not restart this one; an Engine.IO
    client sends a PONG every ``ping_interval`` anyway, and one that does not
    is closed by engine.io's ping check before this timer ends.
    """

    __slots__ = ("_transport", "_timeout", "_loop", "_last", "_timer")

    def __init__(self, transport: Any, timeout: float) -> None:
        self._transport, self._timeout = transport, timeout
        self._loop = asyncio.get_running_loop()
        self._last = self._loop.time()
        self._timer: asyncio.TimerHandle | None = self._loop.call_at(self._last + timeout, self._check)

    def heard(self) -> None:
        self._last = self._loop.time()

    def _check(self) -> None:
        deadline = self._last + self._timeout
        if self._loop.time() < deadline:
            self._timer = self._loop.call_at(deadline, self._check)
            return
        self._timer = None
        if self._transport is not None and not self._transport.is_closing():
            self._transport.abort()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class CompressingSocket(DirectSocket):
    """A :class:`DirectSocket` that accepts permessage-deflate when the client offers it."""

    compress = True


async def _service_task(eio: Any) -> None:
    """engine.io's ``_service_task`` (drop closed sockets, check each ping timeout), holding sids, not sockets.

    engine.io's iterates over a copy of its sockets for a whole cycle of
    ``ping_timeout`` (20 s), sleeping between them: every socket of that copy,
    closed or not, stayed alive until the cycle ended. This one looks each
    sid up when it comes to it and holds no socket while it sleeps.
    """
    loop = asyncio.get_running_loop()
    stop = eio.service_task_event = eio.create_event()
    while not stop.is_set():
        sids = list(eio.sockets)
        interval = eio.ping_timeout / max(len(sids), 1)
        try:
            for sid in sids or [None]:
                await _service_one(eio, eio.sockets.get(sid))
                if await _stopped(stop, interval):
                    return
        except Exception:
            if loop.is_closed():
                return
            eio.logger.exception("service task exception")


async def _service_one(eio: Any, socket: Any) -> None:
    if socket is None:
        return
    if socket.closed:
        eio.sockets.pop(socket.sid, None)
    elif not socket.closing:
        await socket.check_ping_timeout()


async def _stopped(stop: asyncio.Event, timeout: float) -> bool:
    """Whether ``stop`` was set within ``timeout`` seconds (engine.io's shutdown sets it)."""
    try:
        await asyncio.wait_for(stop.wait(), timeout)
    except TimeoutError:
        return False
    return True


def use_direct_sockets(eio: Any, *, compression: bool) -> None:
    """Make every new Engine.IO socket of ``eio`` (aiohttp mode) a :class:`DirectSocket`.

    The class is swapped at the Engine.IO ``connect`` event, which engine.io
    triggers once the socket exists and before its transport starts; then
    python-socketio's own connect handler runs as before.
    """
    if eio.async_mode != "aiohttp":
        return
    direct = CompressingSocket if compression else DirectSocket
    socketio_connect = eio.handlers["connect"]

    async def adopt(eio_sid: str, environ: dict[str, Any]) -> Any:
        socket = eio.sockets.get(eio_sid)
        if type(socket) is AsyncSocket:
            socket.__class__ = direct
        return await socketio_connect(eio_sid, environ)

    eio.on("connect", adopt)
    eio.shotx_turn_writes = TurnWrites()
    eio._service_task = lambda: _service_task(eio)
    release_memory_after_disconnects(eio, MemoryRelease())


def release_memory_after_disconnects(eio: Any, release: MemoryRelease) -> None:
    """Count every Engine.IO disconnect (after python-socketio's own handler) for ``release``'s passes."""
    socketio_disconnect = eio.handlers["disconnect"]

    async def gone(eio_sid: str, reason: Any) -> Any:
        try:
            return await socketio_disconnect(eio_sid, reason)
        finally:
            release.connection_closed()

    eio.on("disconnect", gone)


class SocketGone(ConnectionError):
    """The socket closed (or was never there) before its client answered a ping."""


def _socket(eio: Any, eio_sid: str | None) -> Any:
    """The Engine.IO socket of ``eio_sid``, or None (python-socketio gives None for a sid that is gone)."""
    return eio.sockets.get(eio_sid) if eio_sid is not None else None


async def drained(eio: Any, eio_sid: str | None) -> None:
    """:meth:`DirectSocket.drained` for the socket ``eio_sid`` (at once for a socket that is
    gone, or one on long-polling: a poll takes what is queued)."""
    socket = _socket(eio, eio_sid)
    if isinstance(socket, DirectSocket):
        await socket.drained()


# Frames up to this size go whole into an idle transport (DirectSocket.write_text_frame); larger ones
# through aiohttp's writer, so that what a slow client has not read waits in a task that drained() sees.
WHOLE_FRAME_MAX = 16 * 1024


def text_frame(payload: bytes) -> bytes:
    """A server's WebSocket text frame (RFC 6455 5.2: FIN, opcode 1, unmasked) around ``payload``.

    Why by hand: a room message goes to every member as the same bytes; aiohttp's
    writer would build the header and copy the payload again for each of them.

    >>> text_frame(b"42") == bytes([0x81, 2]) + b"42"
    True
    >>> text_frame(b"x" * 200)[:4] == bytes([0x81, 126, 0, 200])
    True
    >>> text_frame(b"x" * 70_000)[:10] == bytes([0x81, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70])
    True
    """
    length = len(payload)
    if length < 126:
        return bytes((0x81, length)) + payload
    if length < 65536:
        return struct.pack("!BBH", 0x81, 126, length) + payload
    return struct.pack("!BBQ", 0x81, 127, length) + payload


async def round_trip(eio: Any, eio_sid: str | None) -> None:
    """:meth:`DirectSocket.round_trip` for the socket ``eio_sid``: until its client has read what
    was sent to it so far (:class:`SocketGone` once it is gone; at once in another async mode)."""
    socket = _socket(eio, eio_sid)
    if socket is None:
        raise SocketGone("the socket is gone")
    if isinstance(socket, DirectSocket):
        await socket.round_trip()


async def send_to_many(eio: Any, eio_sids: Iterable[str | None], packets: list[Any], *, gather: bool = True) -> None:
    """Send Engine.IO packets to many sockets, each text packet encoded once for all those written at once.

    Each socket gets the packets back to back, in order (a binary event's
    text and attachments); those not written at once (queued, long-polling,
    closing, binary) go through the socket's ``send``. A socket that is gone
    is skipped, as engine.io's ``send_packet`` does. ``gather``: frames of
    one loop turn after a socket's first wait for one write at its end
    (:meth:`DirectSocket.write_text_frame`); a replay page does not gather,
    so that what a slow client has not read waits in the socket's queue,
    where :meth:`DirectSocket.drained` sees it, not in the transport.
    """
    payloads: list[bytes | None] = [None] * len(packets)
    frames: list[bytes | None] = [None] * len(packets)
    for eio_sid in eio_sids:
        socket = _socket(eio, eio_sid)
        if socket is None or socket.closed:
            continue
        for n, pkt in enumerate(packets):
            if isinstance(socket, DirectSocket) and not pkt.binary and socket.may_write_now():
                payload = payloads[n]
                if payload is None:
                    payload = payloads[n] = pkt.encode().encode("utf-8")
                    frames[n] = text_frame(payload) if len(payload) <= WHOLE_FRAME_MAX else None
                socket.write_text_frame(payload, frames[n], gather=gather)
            else:
                await socket.send(pkt)


def send_soon(sio: Any, sid: str, encoded: str) -> None:
    """Send the Socket.IO text ``encoded`` (:func:`packets.event_text`) to ``sid`` in the
    loop's next turn: after whatever the running code sends before it next waits, such as
    python-socketio's CONNECT once the connect handler has returned.

    Why not ``sio.emit`` in a background task, as before: for ``auth_success`` that was
    about 8 % of a connect's CPU (a task, the packet walked for bytes and encoded, and a
    task per recipient). Written at once where :meth:`DirectSocket.may_write_now`, else
    through engine.io's ``send``, which queues it behind what is queued already.
    """
    asyncio.get_running_loop().call_soon(_send_now, sio, sid, encoded)


def _send_now(sio: Any, sid: str, encoded: str) -> None:
    eio_sid = sio.manager.eio_sid_from_sid(sid, "/")
    socket = _socket(sio.eio, eio_sid)
    if socket is None or socket.closed:  # gone meanwhile: engine.io's send drops it too
        return
    if not _write_message_now(socket, encoded):
        sio.start_background_task(sio.eio.send, eio_sid, encoded)


def _write_message_now(socket: Any, encoded: str) -> bool:
    """Write the Socket.IO text ``encoded`` as an Engine.IO MESSAGE at once, if the socket may
    take it (:meth:`DirectSocket.may_write_now`); False: it must go through engine.io's queue."""
    if isinstance(socket, DirectSocket) and socket.may_write_now():
        socket.write_now("4" + encoded)
        return True
    return False


def start_events_eagerly(sio: Any, direct: dict[str, Callable[..., Awaitable[Any]]] | None = None) -> None:
    """python-socketio's ``_handle_event`` with the handler's task started eagerly, and the
    events in ``direct`` answered without python-socketio's dispatch around them.

    python-socketio runs every incoming event in a task of its own (so a
    slow handler does not stop the connection's reader); its first step
    waits for a later loop turn. An eager task runs that step at once, in
    the reader's turn, and costs no scheduling when the handler finishes
    without waiting. Handlers still start in arrival order, each before the
    next frame is read.

    ``direct``: event name to the coroutine function registered for it on the
    default namespace (``sio.on``), which :func:`_answer_directly` calls and
    acks itself; python-socketio's ``_trigger_event`` looked the handler up
    and asked ``inspect.iscoroutinefunction`` again for every event (about
    5 % of an ack). Should another handler be registered for the event later,
    python-socketio's dispatch takes it again.
    """
    if not sio.async_handlers:  # asked for: every handler in the reader, as python-socketio does it
        return
    running: set[asyncio.Task[Any]] = set()
    direct = dict(direct or {})
    for event, handler in direct.items():
        if not inspect.iscoroutinefunction(handler):
            raise TypeError(f"start_events_eagerly: the handler for {event!r} must be a coroutine function")

    def dispatch(eio_sid: str, namespace: str | None, id: int | None, data: Any) -> None:
        namespace = namespace or "/"
        sid = sio.manager.sid_from_eio_sid(eio_sid, namespace)
        if not sio.manager.is_connected(sid, namespace):
            sio.logger.warning("%s is not connected to namespace %s", sid, namespace)
            return
        handler = direct.get(data[0]) if namespace == "/" else None
        if handler is not None and sio.handlers.get("/", {}).get(data[0]) is handler:
            handling = _answer_directly(sio, handler, sid, eio_sid, data, id)
        else:
            handling = sio._handle_event_internal(sio, sid, eio_sid, data, namespace, id)
        task = asyncio.Task(handling, loop=asyncio.get_running_loop(), eager_start=True)
        if not task.done():
            running.add(task)
            task.add_done_callback(running.discard)

    async def handle_event(eio_sid: str, namespace: str | None, id: int | None, data: Any) -> None:
        dispatch(eio_sid, namespace, id, data)

    sio._handle_event = handle_event
    if hasattr(sio.packet_class, "incoming"):  # packets.SxPacket: the reader decodes events itself
        sio.eio.shotx_events = _Events(sio, dispatch)


class _Events:
    """What :meth:`DirectSocket._read` needs to hand a Socket.IO EVENT frame to
    :func:`start_events_eagerly`'s dispatch itself, as python-socketio's
    ``_handle_eio_message`` would (the packet made, then ``_handle_event``), without
    that coroutine and python-socketio's ``__init__`` of the packet around it (about 3 %
    of an ack). Only while no binary packet of that socket awaits its attachments
    (python-socketio's ``_binary_packet``): a frame then is an attachment."""

    __slots__ = ("on_message", "binary_packets", "packet_class", "dispatch")

    def __init__(self, sio: Any, dispatch: Callable[[str, str | None, int | None, Any], None]) -> None:
        self.on_message = sio._handle_eio_message  # the Engine.IO handler this stands in for
        self.binary_packets: dict[str, Any] = sio._binary_packet
        self.packet_class = sio.packet_class
        self.dispatch = dispatch


async def _answer_directly(sio: Any, handler: Callable[..., Awaitable[Any]], sid: str, eio_sid: str,
                           data: list[Any], id: int | None) -> None:
    """python-socketio's ``_handle_event_internal`` for a coroutine handler on the default
    namespace: the handler's result acked as python-socketio acks it (None: no arguments, a
    tuple: one each), its text frame written at once when the socket may take it."""
    try:
        reply = await handler(sid, *data[1:])
    except asyncio.CancelledError:  # as python-socketio's _trigger_event
        reply = None
    if id is None:
        return
    arguments = [] if reply is None else list(reply) if isinstance(reply, tuple) else [reply]
    encoded_ack = getattr(sio.packet_class, "encoded_ack", None)  # packets.SxPacket's, without a packet
    encoded = encoded_ack(id, arguments) if encoded_ack is not None else None
    if encoded is None:
        encoded = sio.packet_class(socketio_packet.ACK, namespace="/", id=id, data=arguments).encode()
    if type(encoded) is not str:  # a binary ack: its text frame and attachments, through python-socketio
        await sio._send_packet(eio_sid, _Encoded(encoded))
        return
    socket = _socket(sio.eio, eio_sid)
    if socket is None or socket.closed:  # engine.io's send drops it too
        return
    if not _write_message_now(socket, encoded):
        await socket.send(packet.Packet(packet.MESSAGE, data=encoded))


class _Encoded:
    """A Socket.IO packet encoded already, for python-socketio's ``_send_packet`` (which encodes)."""

    __slots__ = ("_encoded",)

    def __init__(self, encoded: Any) -> None:
        self._encoded = encoded

    def encode(self) -> Any:
        return self._encoded


def tag_session_ids(eio: Any, index: int) -> None:
    """Make every session id this Engine.IO server gives out start with ``<index>.``.

    Why: with several worker processes on one port (``workers.py``) the
    primary routes a long-polling request to the worker its sid names, without
    a table of sessions (``sticky.py``). python-engineio's handshake takes a new
    session's id from ``generate_id()``; python-socketio takes its namespace
    sids from the same method, so they carry the tag too (harmless: opaque).
    """
    generate = eio.generate_id
    eio.generate_id = lambda: tagged_sid(index, generate())
