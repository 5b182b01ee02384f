"""Socket.IO frames around JSON text the server has encoded already.

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
