"""Bytes in Shotx data: Socket.IO's binary form, shared by both ends.

Shotx sends files as ``send(type, buffer)``: Socket.IO carries every
``bytes`` (a JavaScript ``ArrayBuffer`` or typed array) found anywhere in an
event's arguments as a binary *attachment*, and leaves in its place the
placeholder ``{"_placeholder": true, "num": n}`` in the JSON text of the
packet. This module is that transformation, once, for every place that keeps
or moves data: the server's log and reply memory (JSON text with
placeholders plus the attachments as binary, never base64), the client's
outbox stores (the same), the browser transport (the attachments cross
Pyodide's FFI as ``Uint8Array``\\ s) and the size limits (text plus
attachment bytes).

Data without bytes stays plain JSON text: :func:`encode` tries the JSON
encoder first and walks the value only when the encoder met something it
cannot carry, so text messages pay nothing for this.

The one ambiguity is Socket.IO's own: data that holds a literal dict
``{"_placeholder": true, "num": 0}`` *and* bytes elsewhere is read back with
the bytes in that dict's place. Without bytes, nothing is replaced.

>>> text, attachments = encode({"name": "a.bin", "file": b"\\x00\\xff"})
>>> text, attachments
('{"name":"a.bin","file":{"_placeholder":true,"num":0}}', (b'\\x00\\xff',))
>>> decode(text, attachments)
{'name': 'a.bin', 'file': b'\\x00\\xff'}
>>> encode({"n": 1})
('{"n":1}', ())
"""

from __future__ import annotations

import json
import struct
from typing import Any, Final

from . import protocol

Attachments = tuple[bytes, ...]
PLACEHOLDER: Final = "_placeholder"
_LENGTH = struct.Struct(">Q")


def split(value: Any) -> tuple[Any, list[bytes]]:
    """``value`` with every ``bytes``/``bytearray`` replaced by a placeholder, and those bytes in order.

    >>> split([b"a", {"b": bytearray(b"c")}])
    ([{'_placeholder': True, 'num': 0}, {'b': {'_placeholder': True, 'num': 1}}], [b'a', b'c'])
    """
    attachments: list[bytes] = []
    return _split(value, attachments), attachments


def _split(value: Any, attachments: list[bytes]) -> Any:
    if isinstance(value, (bytes, bytearray)):  # what python-socketio sends as binary (not memoryview)
        attachments.append(bytes(value))
        return {PLACEHOLDER: True, "num": len(attachments) - 1}
    if isinstance(value, (list, tuple)):
        return [_split(item, attachments) for item in value]
    if isinstance(value, dict):
        return {key: _split(item, attachments) for key, item in value.items()}
    return value


def join(value: Any, attachments: Attachments | list[bytes]) -> Any:
    """:func:`split` undone: placeholders replaced by their attachments.

    Raises ``ValueError`` for a placeholder that names no attachment.

    >>> join({"f": {"_placeholder": True, "num": 0}}, [b"x"])
    {'f': b'x'}
    """
    if not attachments:
        return value
    return _join(value, attachments)


def _join(value: Any, attachments: Attachments | list[bytes]) -> Any:
    if isinstance(value, list):
        return [_join(item, attachments) for item in value]
    if isinstance(value, dict):
        if value.get(PLACEHOLDER) is True and "num" in value:
            num = value["num"]
            if type(num) is not int or not 0 <= num < len(attachments):
                raise ValueError(f"binary placeholder {num!r:.20} names no attachment (there are "
                                 f"{len(attachments)})")
            return attachments[num]
        return {key: _join(item, attachments) for key, item in value.items()}
    return value


def encode(value: Any) -> tuple[str, Attachments]:
    """Compact JSON text (placeholders where bytes were) and the attachments.

    Raises like :func:`protocol.encode_json` for anything else JSON cannot carry.
    """
    try:
        return protocol.encode_json(value), ()
    except TypeError:  # bytes, or something no encoding can carry: the walk tells which
        placed, attachments = split(value)
        if not attachments:
            raise
        return protocol.encode_json(placed), tuple(attachments)


def decode(text: str, attachments: Attachments | list[bytes] = ()) -> Any:
    """The value :func:`encode` was given."""
    return join(json.loads(text), attachments)


def size(text: str, attachments: Attachments | list[bytes] = ()) -> int:
    """Bytes on the wire: the text as UTF-8 plus every attachment (what ``max_message_size`` counts)."""
    return len(text.encode()) + sum(len(attachment) for attachment in attachments)


def encoded_size(value: Any) -> int:
    """Bytes ``value`` takes on the wire, attachments included: what the server's limit and
    the outbox's byte bound count. Raises like :func:`encode`.

    >>> encoded_size({"a": "é"}), encoded_size({"file": b"1234"})
    (10, 42)
    """
    return size(*encode(value))


def pack(attachments: Attachments | list[bytes]) -> bytes:
    """Attachments as one binary value, for a store column or field (each length-prefixed).

    >>> unpack(pack([b"ab", b""]))
    (b'ab', b'')
    """
    return b"".join(_LENGTH.pack(len(item)) + item for item in attachments)


def unpack(blob: bytes | None) -> Attachments:
    """:func:`pack` undone; ``None`` or empty is no attachments."""
    if not blob:
        return ()
    view, items, at = memoryview(blob), [], 0
    while at < len(view):
        (length,) = _LENGTH.unpack_from(view, at)
        at += _LENGTH.size
        if at + length > len(view):
            raise ValueError("packed attachments are cut short")
        items.append(bytes(view[at:at + length]))
        at += length
    return tuple(items)
