"""Socket.IO frames around JSON text the server has encoded already, the
sending of logged room messages in them, and the refusal of frames that
cannot be decoded.

The server encodes every reply once anyway (to remember it for resends, and
to learn before sending that it can be sent at all) and every room message
once (for its log). Handing python-socketio the dict instead would make it
encode the same value again and walk it looking for binary data, which were
the two largest costs our layer added to an ack.

Bytes in either (``shotx.client.binary``) travel as Socket.IO binary: the
text frame with placeholders, then one binary frame per attachment, built
here around the same text.

Incoming frames: python-socketio decodes a client's frame in the serializer's
constructor, and a frame it cannot decode (malformed or 10,000-deep JSON, an
event that is not ``[name, ...]``, an attachment that is text, placeholders
that match no attachment) raises inside Engine.IO's message handler: a
traceback is logged and nothing is sent, so a client waiting for its ack
waits for ever. :class:`SxPacket` turns such a frame into a ``message`` event
carrying a :class:`MalformedFrame`, which the server answers with an
``INVALID_FORMAT`` reply when the frame's ack id could be read, and with a
clean disconnect when it could not (nobody can be told otherwise, and the
client's resend after reconnecting is the way out). A binary frame whose
attachments add up to more than the server's ``max_message_size`` (each
one alone is held to Engine.IO's frame limit) closes the connection too,
as a text frame over the limit does. Client events named
``connect`` or ``disconnect`` are decodable and refused by the server's
lifecycle handlers (``server.py``), whatever the serializer.
"""

from __future__ import annotations

import json
import re
from typing import Any

import socketio  # type: ignore[import-untyped]
from engineio import packet as engineio_packet  # type: ignore[import-untyped]

from shotx.client import protocol

from .engineio_sockets import drained, round_trip, send_to_many
from .store import LogEntry

# A Socket.IO EVENT packet on the default namespace, as python-socketio encodes
# it: the packet type, then the JSON array [event, payload].
_MESSAGE_FRAME_START = f'{socketio.packet.EVENT}["{protocol.MESSAGE_EVENT}",'


# What a client may send: the packet types it may use.
_CLIENT_TYPES = frozenset({socketio.packet.CONNECT, socketio.packet.DISCONNECT, socketio.packet.EVENT,
                           socketio.packet.ACK, socketio.packet.BINARY_EVENT, socketio.packet.BINARY_ACK})
_REQUESTS = frozenset({socketio.packet.EVENT, socketio.packet.BINARY_EVENT})
_UNBINARY = {socketio.packet.BINARY_EVENT: socketio.packet.EVENT, socketio.packet.BINARY_ACK: socketio.packet.ACK}
_BINARY = {text: binary_type for binary_type, text in _UNBINARY.items()}
# The head of a frame as python-socketio's decoder reads it: type, attachment
# count, namespace, ack id (at most 100 digits; a longer one is unreadable).
_HEAD = re.compile(r"(?P<type>[0-9])(?:[0-9]{1,10}-)?(?:(?P<nsp>/[^,]*),)?(?P<id>[0-9]{1,100})?(?![0-9])")


# An event on the default namespace with at most python-socketio's 100 digits of ack id, then
# its JSON array: what SxPacket.decode reads itself.
_PLAIN_EVENT = re.compile(r"2([0-9]{0,100})(?=\[)")

_OUTGOING: Any = object()  # SxPacket's encoded_packet when the server builds a packet to send


class MalformedFrame:
    """Stands in for the payload of a client frame :class:`SxPacket` could not decode.

    ``answerable``: the frame's ack id was read, so the client can be told
    with an error reply; else the server closes the connection.
    """

    __slots__ = ("reason", "answerable")

    def __init__(self, reason: str, answerable: bool) -> None:
        self.reason = reason
        self.answerable = answerable

    def __repr__(self) -> str:
        return f"MalformedFrame({self.reason!r}, answerable={self.answerable})"


class JsonText(str):
    """Text that is JSON already: :class:`SxPacket` sends it as a value, not as a string."""

    __slots__ = ()


class BinaryJsonText(JsonText):
    """:class:`JsonText` with Socket.IO placeholders, and the attachments they name.

    :class:`SxPacket` sends it as a binary packet: the text, then each attachment.
    """

    attachments: tuple[bytes, ...]

    def __new__(cls, text: str, attachments: tuple[bytes, ...]) -> BinaryJsonText:
        made = super().__new__(cls, text)
        made.attachments = attachments
        return made


def _int_of_at_most_100_digits(text: str) -> int:
    """engine.io's ``parse_int``: a longer integer is refused (int() of a huge one is slow)."""
    if len(text) > 100:
        raise ValueError("Integer is too large")
    return int(text)


class ServerJson:
    """engine.io's JSON for python-socketio's packets, with its decoder made once.

    engine.io's ``loads`` passes ``parse_int`` on every call, and json then
    builds a new decoder and scanner for every frame: a third of decoding a
    small frame. The reading is the same: integers of more than 100 digits
    are refused, everything else as json reads it.
    """

    _decode = json.JSONDecoder(parse_int=_int_of_at_most_100_digits).decode
    dumps = staticmethod(json.dumps)

    @classmethod
    def loads(cls, text: str) -> Any:
        if text.startswith("\ufeff"):  # json.loads's own check, which the decoder alone skips
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
        return cls._decode(text)


class SxPacket(socketio.packet.Packet):  # type: ignore[misc]
    """python-socketio's JSON packet that sends a :class:`JsonText` payload as it is.

    SxServer uses it (:meth:`limited` to its ``max_message_size``) as
    python-socketio's ``serializer`` unless another one is chosen; every
    other packet encodes exactly as the stock one does.
    """

    json = ServerJson
    # Most attachment bytes one incoming packet may carry (None: no limit of ours).
    max_attachment_bytes: int | None = None
    attachment_bytes = 0  # of the attachments received so far (an instance's own once one arrives)

    data: Any
    packet_type: int
    namespace: str | None
    id: int | None
    attachment_count: int
    attachments: list[Any]

    def __init__(self, *args: Any, encoded_packet: Any = _OUTGOING, **kwargs: Any) -> None:
        if encoded_packet is _OUTGOING:  # a packet the server sends
            super().__init__(*args, **kwargs)
            return
        super().__init__(*args, encoded_packet=encoded_packet, **kwargs)
        if not encoded_packet:
            # python-socketio skips decoding a falsy frame: an empty one, or the
            # None Engine.IO makes of the text frame "4null" (it parses JSON-like
            # message text itself); either would fail later, unanswered.
            self._refuse(encoded_packet, "empty frame")

    @classmethod
    def incoming(cls, encoded_packet: str) -> SxPacket:
        """``cls(encoded_packet=...)`` for a client's text frame, the same packet made
        without python-socketio's ``__init__`` (which first walks its data, None, for
        bytes): ``engineio_sockets`` decodes every event frame with it. A subclass whose
        own ``__init__`` must run for a received packet overrides this too."""
        made = cls.__new__(cls)
        made.packet_type, made.data, made.namespace, made.id = socketio.packet.EVENT, None, None, None
        made.attachments = []
        made.attachment_count = made.decode(encoded_packet) or 0
        if not encoded_packet:
            made._refuse(encoded_packet, "empty frame")
        return made

    def decode(self, encoded_packet: Any) -> int:
        """python-socketio's decoding, with every frame it cannot decode refused (see the module).

        The usual frame, an event on the default namespace (``2<ack id>[...]``),
        is read here as python-socketio reads it, without its walk over the head
        one character at a time (a third of decoding a small frame).
        """
        plain = _PLAIN_EVENT.match(encoded_packet) if type(encoded_packet) is str else None
        try:
            if plain is not None:
                self.packet_type, self.namespace = socketio.packet.EVENT, None
                self.id = int(plain[1]) if plain[1] else None
                self.data = self.json.loads(encoded_packet[plain.end():])
                attachments = 0
            else:
                attachments = int(super().decode(encoded_packet) or 0)
        except Exception as error:  # ValueError, TypeError (bytes), RecursionError (deep JSON)
            return self._refuse(encoded_packet, f"undecodable frame ({type(error).__name__}: {error})")
        problem = self._problem()
        if problem is not None:
            return self._refuse(encoded_packet, problem)
        if self.packet_type in _UNBINARY and attachments == 0:
            # python-socketio would wait for ever for the first of no attachments
            # (and take every later frame as one); socket.io's parser dispatches it.
            try:
                self.data = self.reconstruct_binary(self.data, [])
            except Exception:
                return self._refuse(encoded_packet, "binary placeholder without an attachment")
            self.packet_type = _UNBINARY[self.packet_type]
        return attachments

    @classmethod
    def limited(cls, max_attachment_bytes: int) -> type[SxPacket]:
        """This packet class with a server's limit on the attachment bytes of one packet."""
        return type("SxPacket", (cls,), {"max_attachment_bytes": max_attachment_bytes})

    def add_attachment(self, attachment: Any) -> bool:
        """python-socketio's, refusing text where an attachment is due, attachments
        past the size limit, and placeholders that match no attachment (True: the
        packet is complete)."""
        if not isinstance(attachment, bytes):
            # The text frame is taken and lost: only a disconnect tells its sender.
            self._malformed("a text frame arrived where a binary attachment was due", answerable=False)
            return True
        limit = self.max_attachment_bytes
        # a running total: summing every attachment again per attachment was quadratic in their number
        self.attachment_bytes += len(attachment)
        if limit is not None and self.attachment_bytes > limit:
            # As for a text frame over the limit: the connection closes (the client refuses such a send).
            self._malformed(f"binary attachments over max_message_size ({limit} bytes)", answerable=False)
            self.attachments = []
            return True
        try:
            return bool(super().add_attachment(attachment))
        except Exception as error:
            self._malformed(f"binary attachments do not match the placeholders ({type(error).__name__})",
                            answerable=self.id is not None)
            return True

    def _problem(self) -> str | None:
        if self.packet_type not in _CLIENT_TYPES:
            return f"a client may not send Socket.IO packets of type {self.packet_type}"
        if self.packet_type not in _REQUESTS:
            return None
        data = self.data
        if type(data) is not list or not data or not isinstance(data[0], str):
            return "an event must be a JSON array starting with its name"
        return None

    def _refuse(self, encoded_packet: Any, reason: str) -> int:
        """Become the frame the server answers for one it could not decode: a
        ``message`` event carrying a :class:`MalformedFrame`, on the frame's
        namespace and ack id as far as they could be read; a connect that
        cannot be read is a connect without auth (refused as AUTH_NULL)."""
        head = _HEAD.match(encoded_packet) if isinstance(encoded_packet, str) else None
        kind = int(head["type"]) if head else None
        self.namespace = head["nsp"].partition("?")[0] if head and head["nsp"] else None
        self.attachment_count, self.attachments = 0, []
        if kind == socketio.packet.CONNECT:
            self.packet_type, self.id, self.data = socketio.packet.CONNECT, None, None
            return 0
        self.packet_type = socketio.packet.EVENT
        self.id = int(head["id"]) if head and head["id"] and kind in _REQUESTS else None
        self._malformed(reason, answerable=self.id is not None)
        return 0

    def _malformed(self, reason: str, answerable: bool) -> None:
        if not answerable:
            self.id = None
        self.data = [protocol.MESSAGE_EVENT, MalformedFrame(reason[:200], answerable)]

    @staticmethod
    def encoded_ack(id: int, arguments: list[Any]) -> str | None:
        """What :meth:`encode` makes of an ack on the default namespace whose one argument is
        a plain :class:`JsonText` (a handler's reply), without making the packet; None for
        any other ack. ``engineio_sockets._answer_directly`` asks for it."""
        if len(arguments) == 1 and type(arguments[0]) is JsonText:
            return f"{socketio.packet.ACK}{id}[{arguments[0]}]"
        return None

    def encode(self) -> Any:
        data = self.data
        if type(data) is list and len(data) == 1 and isinstance(data[0], JsonText):
            self.data = None  # the stock encoding of everything before the payload
            try:
                head = super().encode()
            finally:
                self.data = data
            if not isinstance(data[0], BinaryJsonText) or not data[0].attachments:
                return f"{head}[{data[0]}]"
            attachments = data[0].attachments  # head is '3<id>' (an ack) or '2...' (an event)
            return [f"{_BINARY[int(head[0])]}{len(attachments)}-{head[1:]}[{data[0]}]", *attachments]
        return super().encode()


def event_text(event: str, data: Any) -> str | None:
    """The Socket.IO text of the event ``[event, data]`` on the default namespace, as
    :class:`SxPacket` would carry it (compact JSON, text as it is), or None for data that
    JSON text cannot carry (bytes, which travel as attachments; NaN; a lone surrogate) and
    for a tuple (which ``emit`` spreads into arguments): python-socketio's ``emit`` sends
    those as it always did.

    >>> event_text("auth_success", {"user": "é"}), event_text("auth_success", {"raw": b"x"})
    ('2["auth_success",{"user":"é"}]', None)
    >>> event_text("auth_success", ("a", "b")) is None
    True
    """
    if isinstance(data, tuple):
        return None
    try:
        return f"{socketio.packet.EVENT}{protocol.encode_json([event, data])}"
    except (TypeError, ValueError):
        return None


def message_frame(message_json: str) -> Any:
    """The Engine.IO frame of a Shotx ``message`` event whose payload is ``message_json``."""
    return engineio_packet.Packet(engineio_packet.MESSAGE, f"{_MESSAGE_FRAME_START}{message_json}]")


def message_frames(message_json: str, attachments: tuple[bytes, ...] = ()) -> list[Any]:
    """The Engine.IO frames of a ``message`` event: one, or a binary event's text and its attachments."""
    if not attachments:
        return [message_frame(message_json)]
    head = f'{socketio.packet.BINARY_EVENT}{len(attachments)}-["{protocol.MESSAGE_EVENT}",'
    return [engineio_packet.Packet(engineio_packet.MESSAGE, f"{head}{message_json}]"),
            *(engineio_packet.Packet(engineio_packet.MESSAGE, attachment) for attachment in attachments)]


class RoomMessageSender:
    """Sends logged room messages to a room's members or to one socket.

    Where it may, it writes the Engine.IO frame itself: the text is built
    around the log's JSON with no re-encoding, and no task is made per
    member. ``sio.emit`` would encode the whole message again, walk it
    looking for binary data and start and await a task per recipient, which
    cost more than the whole durable append. It may only with python-socketio's
    JSON packets and its single-process manager: a custom serializer needs its
    own encoding, and a pub/sub manager (Redis, Kafka...) must see every
    broadcast to pass it to other servers.
    """

    def __init__(self, sio: Any) -> None:
        self.sio = sio
        # room -> {sid: replays running}: members catching up from the log (see start_catch_up)
        self.catching_up: dict[str, dict[str, int]] = {}
        self.writes_frames = ((sio.packet_class is socketio.packet.Packet or issubclass(sio.packet_class, SxPacket))
                              and type(sio.manager) is socketio.AsyncManager)

    def start_catch_up(self, room: str, sid: str) -> None:
        """``sid`` is in ``room`` but catching up from the log: live messages of the room skip it
        (they are in the log, where its replay reads them in order) until :meth:`end_catch_up`."""
        members = self.catching_up.setdefault(room, {})
        members[sid] = members.get(sid, 0) + 1

    def end_catch_up(self, room: str, sid: str) -> None:
        members = self.catching_up.get(room, {})
        left = members.pop(sid, 1) - 1
        if left > 0:  # another replay of this room to this socket still runs
            members[sid] = left
        elif not members:
            self.catching_up.pop(room, None)

    async def drained(self, sid: str) -> None:
        """Until what was sent to ``sid`` is written out (see ``engineio_sockets.drained``)."""
        await drained(self.sio.eio, self.sio.manager.eio_sid_from_sid(sid, "/"))

    async def read_so_far(self, sid: str) -> None:
        """Until ``sid``'s client has read what was sent to it so far (see ``engineio_sockets.round_trip``)."""
        await round_trip(self.sio.eio, self.sio.manager.eio_sid_from_sid(sid, "/"))

    async def send(self, entry: LogEntry, *, room: str | None = None, sid: str | None = None) -> None:
        skip = self.catching_up.get(room) if room is not None else None
        if not self.writes_frames:
            message = protocol.room_message(entry.type, entry.data, entry.id, entry.room, entry.offset)
            await self.sio.emit(protocol.MESSAGE_EVENT, message, room=room, to=sid,
                                skip_sid=list(skip) if skip else None)
            return
        frames = message_frames(protocol.room_message_json(entry.type, entry.data_json, entry.id, entry.room,
                                                           entry.offset), entry.attachments)
        if sid is not None:
            eio_sids = [self.sio.manager.eio_sid_from_sid(sid, "/")]
        else:
            eio_sids = [eio_sid for member, eio_sid in self.sio.manager.get_participants("/", room)
                        if not skip or member not in skip]
        # encoded once for every member; a binary event's frames back to back to each: nothing of
        # ours comes between; a replay's page (to one sid) is not gathered (send_to_many says why)
        await send_to_many(self.sio.eio, eio_sids, frames, gather=sid is None)
