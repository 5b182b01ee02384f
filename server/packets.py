"""Socket.IO frames around JSON text the server has encoded already, and
the sending of logged room messages in them.

The server encodes every reply once anyway (to remember it for resends, and
to learn before sending that it can be sent at all) and every room message
once (for its log). Handing python-socketio the dict instead would make it
encode the same value again and walk it looking for binary data, which were
the two largest costs our layer added to an ack.
"""

from __future__ import annotations

from typing import Any

import socketio  # type: ignore[import-untyped]
from engineio import packet as engineio_packet  # type: ignore[import-untyped]

from shotx.client import protocol

from .store import LogEntry

# A Socket.IO EVENT packet on the default namespace, as python-socketio encodes
# it: the packet type, then the JSON array [event, payload].
_MESSAGE_FRAME_START = f'{socketio.packet.EVENT}["{protocol.MESSAGE_EVENT}",'


class JsonText(str):
    """Text that is JSON already: :class:`SxPacket` sends it as a value, not as a string."""

    __slots__ = ()


class SxPacket(socketio.packet.Packet):  # type: ignore[misc]
    """python-socketio's JSON packet that sends a :class:`JsonText` payload as it is.

    SxServer uses it as python-socketio's ``serializer`` unless another one
    is chosen; every other packet encodes exactly as the stock one does.
    """

    data: Any

    def encode(self) -> Any:
        data = self.data
        if type(data) is list and len(data) == 1 and type(data[0]) is JsonText:
            self.data = None  # the stock encoding of everything before the payload
            try:
                head = super().encode()
            finally:
                self.data = data
            return f"{head}[{data[0]}]"
        return super().encode()


def message_frame(message_json: str) -> Any:
    """The Engine.IO frame of a Shotx ``message`` event whose payload is ``message_json``."""
    return engineio_packet.Packet(engineio_packet.MESSAGE, f"{_MESSAGE_FRAME_START}{message_json}]")


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
        self.writes_frames = (sio.packet_class in (SxPacket, socketio.packet.Packet)
                              and type(sio.manager) is socketio.AsyncManager)

    async def send(self, entry: LogEntry, *, room: str | None = None, sid: str | None = None) -> None:
        if not self.writes_frames:
            message = protocol.room_message(entry.type, entry.data, entry.id, entry.room, entry.offset)
            await self.sio.emit(protocol.MESSAGE_EVENT, message, room=room, to=sid)
            return
        frame = message_frame(protocol.room_message_json(entry.type, entry.data_json, entry.id, entry.room,
                                                         entry.offset))
        if sid is not None:
            eio_sids = [self.sio.manager.eio_sid_from_sid(sid, "/")]
        else:
            eio_sids = [eio_sid for _, eio_sid in self.sio.manager.get_participants("/", room)]
        for eio_sid in eio_sids:
            if eio_sid is not None:
                await self.sio.eio.send_packet(eio_sid, frame)
