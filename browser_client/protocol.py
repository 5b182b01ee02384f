"""The Shotx wire protocol: envelopes, reply codes and message ids.

Both ends import this module (the server too), so the two can never disagree
on a code or a field name. Nothing here does I/O.

Wire summary (Socket.IO, default path ``/shotx/``, handshake ``auth: {token}``):

* client -> server, event ``message`` with an ack:
  ``{"meta": {"type": t, "id": uuid7}, "data": d}``
* ack: ``{"meta": {"success": True}, "data": result}`` or
  ``{"meta": {"success": False, "code": 200x, "error": text}, "data": None}``
* server -> client, event ``message``: ``{"meta": {"type", "id", ...}, "data"}``;
  room messages add ``room`` and ``offset`` to ``meta`` (our extension, which a
  Shotx JavaScript peer ignores).
* built-in types ``sx_join {room, since?}`` and ``sx_leave {room}``.
* a message sent again (its ack was not seen) carries ``meta.resend: true``,
  so the server looks up the reply it may have remembered.
"""

from __future__ import annotations

import inspect
import json
import os
import time
from collections.abc import Callable
from typing import Any, Final

MESSAGE_EVENT: Final = "message"
AUTH_SUCCESS_EVENT: Final = "auth_success"
DEFAULT_PATH: Final = "/shotx/"
DEFAULT_URL: Final = "http://localhost:3000"
MAX_MESSAGE_SIZE: Final = 2 * 1024 * 1024

JOIN: Final = "sx_join"
# A join answer's ``reset``: why the offset the client sent did not apply.
RESET_NEW_HISTORY: Final = "new_history"  # the room's log has another epoch (history)
RESET_LOG_BEHIND: Final = "log_behind"  # same history, but the log ends before that offset
LEAVE: Final = "sx_leave"
BUILTIN_TYPES: Final = frozenset({JOIN, LEAVE})

# Refusals, sent as the connect_error message.
AUTH_NULL: Final = "AUTH_NULL"
AUTH_FAIL: Final = "AUTH_FAIL"
AUTH_ERROR: Final = "AUTH_ERROR"
AUTH_CODES: Final = frozenset({AUTH_NULL, AUTH_FAIL, AUTH_ERROR})

# Reply codes, exactly the Shotx values.
INVALID_FORMAT: Final = 2001
INVALID_TYPE: Final = 2002
UNKNOWN_TYPE: Final = 2003
HANDLER_ERROR: Final = 2004
# Ours, additive: with SxServer(at_most_once=True), a resend whose first copy
# may have run before the server stopped, and was never answered; not run again.
OUTCOME_UNKNOWN: Final = 2005
# Ours, additive: the server's authorize_join refused the room (or the socket is
# not authenticated). Final: our client does not rejoin a refused room.
JOIN_REFUSED: Final = 2006
# Ours, additive: a per-connection limit (messages a second, messages in
# progress, rooms) refused this message; the text says which. Not handled: safe to send again later.
LIMIT_EXCEEDED: Final = 2007

_TEXTS: Final = {
    INVALID_FORMAT: "Invalid message format",
    INVALID_TYPE: "Invalid message type",
    HANDLER_ERROR: "Error processing message",
    JOIN_REFUSED: "Join refused",
}


def uuid7() -> str:
    """A UUIDv7 string: 48 bits of Unix milliseconds, then random bits.

    Time-ordered, so ids sort roughly in send order (RFC 9562).
    ``uuid.uuid7`` only arrived in Python 3.14; Pyodide has it, CPython 3.12 not.

    >>> len(uuid7()), uuid7()[14]
    (36, '7')
    """
    ms = time.time_ns() // 1_000_000
    value = (ms & 0xFFFF_FFFF_FFFF) << 80 | int.from_bytes(os.urandom(10), "big")
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122 variant
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def request(type_: str, data: Any, message_id: str | None = None, **meta: Any) -> dict[str, Any]:
    """The envelope a client sends.

    >>> request("test_route", {"n": 1}, "id-1")
    {'meta': {'type': 'test_route', 'id': 'id-1'}, 'data': {'n': 1}}
    """
    return {"meta": {"type": type_, "id": message_id or uuid7(), **meta}, "data": data}


def success(data: Any) -> dict[str, Any]:
    """The ack of a handled message."""
    return {"meta": {"success": True}, "data": data}


def failure(code: int, error: str | None = None) -> dict[str, Any]:
    """The ack of a refused message; ``error`` defaults to the Shotx text."""
    return {"meta": {"success": False, "code": code, "error": error or _TEXTS.get(code, "")}, "data": None}


def unknown_type(type_: str) -> dict[str, Any]:
    return failure(UNKNOWN_TYPE, f"Unknown message type: {type_}")


def check_request(message: Any) -> tuple[str, Any, dict[str, Any]] | dict[str, Any]:
    """Return ``(type, data, meta)`` for a well-formed request, or the error ack.

    >>> check_request("nope")["meta"]["code"]
    2001
    >>> check_request({"meta": {}})["meta"]["code"]
    2002
    >>> check_request({"meta": {"type": "t"}, "data": 1})
    ('t', 1, {'type': 't'})
    >>> check_request({"meta": {"type": "t", "id": "\\ud800"}})["meta"]["code"]
    2001

    A type or id that is not storable text (see :func:`check_storable`) is
    refused here: the id becomes a key of the reply memory and a room
    message's id, and a store cannot write it.
    """
    if not isinstance(message, dict):
        return failure(INVALID_FORMAT)
    meta = message.get("meta")
    if not isinstance(meta, dict) or not isinstance(meta.get("type"), str):
        return failure(INVALID_TYPE)
    type_, message_id = meta["type"], meta.get("id")
    try:
        check_storable(type_, "Message type")
    except ValueError as error:
        return failure(INVALID_TYPE, f"Invalid message type: {error}")
    if isinstance(message_id, str):
        try:
            check_storable(message_id, "Message id")
        except ValueError as error:
            return failure(INVALID_FORMAT, f"Invalid message format: {error}")
    return type_, message.get("data"), meta


def message_id(type_: str, meta: dict[str, Any]) -> str | None:
    """The id that puts a message in its sender's stream: run once per id (resends answered
    from the reply memory) and, on an ordered connection, held behind a refused one. None for
    a built-in request and for a missing, empty or non-string id: such a message runs each time.

    >>> message_id("t", {"id": "m1"}), message_id("t", {"id": ""}), message_id(JOIN, {"id": "m1"})
    ('m1', None, None)
    """
    found = meta.get("id")
    if type_ in BUILTIN_TYPES or not isinstance(found, str) or not found:
        return None
    return found


def room_message(type_: str, data: Any, message_id: str, room: str, offset: int) -> dict[str, Any]:
    """A room message as the server broadcasts it."""
    return {"meta": {"type": type_, "id": message_id, "room": room, "offset": offset}, "data": data}


def room_message_json(type_: str, data_json: str, message_id: str, room: str, offset: int) -> str:
    """:func:`room_message` as JSON text, around data that is JSON text already.

    The server encodes a room message's data once and uses that text for its
    log and for every member's frame, instead of encoding it per use.

    >>> room_message_json("n", '{"a":1}', "id", "r", 7)
    '{"meta":{"type":"n","id":"id","room":"r","offset":7},"data":{"a":1}}'
    """
    meta = encode_json({"type": type_, "id": message_id, "room": room, "offset": offset})
    return f'{{"meta":{meta},"data":{data_json}}}'


def encode_json(value: Any) -> str:
    """Compact JSON as the wire carries it.

    Raises ``TypeError`` for values JSON cannot carry and ``ValueError`` for
    NaN and infinities (valid for Python's json, refused by JavaScript's
    ``JSON.parse``) and for text that is not storable (:func:`check_storable`:
    the text is kept as it is, not escaped, so a lone surrogate would reach a
    store that cannot write it), so a bad send fails in the caller's hands
    instead of in the outbox, in a store's commit or in a peer's decoder.

    >>> encode_json({"a": "é"})
    '{"a":"é"}'
    >>> encode_json("\\udc00")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: Data as JSON is not storable text: a lone UTF-16 surrogate (\\udc00 at character 2); ...
    """
    if _ENCODE_ONCE_MADE is None:
        text = _ENCODER.encode(value)
    else:
        try:
            text = "".join(_ENCODE_ONCE_MADE(value, 0))
        except RecursionError:  # a cycle (or a deep value): the encoder with its cycle check says which
            text = _ENCODER.encode(value)
    return text if text.isascii() else check_storable(text, "Data as JSON")  # the check only costs on non-ASCII


# json.dumps builds a new encoder per call when given options; one made once saves that.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
# And JSONEncoder.encode builds its C encoder per call, with a dict for its cycle check: the
# same C encoder made once, without that dict, takes a third of the time (a server encodes
# every reply). A cycle then ends in RecursionError, and encode_json asks _ENCODER, which
# refuses it as before. None where json has no C encoder.
_MAKE_C_ENCODER = getattr(json.encoder, "c_make_encoder", None)  # private to json: absent is handled
_ENCODE_ONCE_MADE = (None if _MAKE_C_ENCODER is None else _MAKE_C_ENCODER(
    None, _ENCODER.default, json.encoder.encode_basestring, None, ":", ",", False, False, False))


def handler_arity(fn: Callable[..., Any], most: int) -> int:
    """How many of the ``most`` arguments Shotx passes a handler takes.

    Handlers may leave trailing ones out (the server passes ``data, socket,
    meta``, the client ``data, meta``); ``*args`` or a signature Python cannot
    read takes them all.

    >>> handler_arity(lambda data: None, 2), handler_arity(lambda data, socket, meta: None, 3)
    (1, 3)
    """
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return most
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return most
    return min(most, sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params))


def register_or_decorate(owner: Any, register: Callable[[str, Callable[..., Any]], None], type_: Any,
                         handler: Callable[..., Any] | None, name: str = "on_message") -> Any:
    """``on_message`` on both ends (and the client's ``on_reply``, as ``name``): with a
    handler, register it and return ``owner`` (for chaining); without, return a decorator
    that registers the function and gives it back unchanged.

    >>> routes = {}
    >>> register_or_decorate("owner", routes.__setitem__, "t", print)
    'owner'
    >>> register_or_decorate("owner", routes.__setitem__, "u", None)(len) is len, sorted(routes)
    (True, ['t', 'u'])
    """
    if not isinstance(type_, str) or not type_ or (handler is not None and not callable(handler)):
        raise TypeError(f"Invalid parameters for {name}: need a non-empty str type and a function")
    if handler is not None:
        register(type_, handler)
        return owner

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        register_or_decorate(owner, register, type_, fn, name)
        return fn
    return decorate


def check_type(type_: Any) -> str:
    """Return ``type_`` or raise ``TypeError``: a message type is a non-empty str."""
    if not isinstance(type_, str) or not type_:
        raise TypeError("Message type must be a non-empty string")
    return check_storable(type_, "Message type")


MAX_ROOM_LENGTH: Final = 256


def check_room(room: Any) -> str:
    """Return ``room`` or raise ``ValueError`` with a text fit for an ack.

    A room is a string of 1 to 256 characters of storable text
    (:func:`check_storable`) with no control characters (they would end up
    in logs and keys as they are).

    >>> check_room("user-42")
    'user-42'
    >>> check_room("a\\nb")
    Traceback (most recent call last):
    ValueError: Invalid room: control character U+000A at character 2
    """
    if not isinstance(room, str) or not room:
        raise ValueError("Invalid room: must be a non-empty string")
    if len(room) > MAX_ROOM_LENGTH:
        raise ValueError(f"Invalid room: {len(room)} characters, at most {MAX_ROOM_LENGTH}")
    for index, char in enumerate(room):
        if char < " " or "\x7f" <= char <= "\x9f":
            raise ValueError(f"Invalid room: control character U+{ord(char):04X} at character {index + 1}")
    try:
        return check_storable(room, "Room")
    except ValueError as error:
        raise ValueError(f"Invalid room: {error}") from None


def check_storable(text: str, what: str = "Text") -> str:
    """Return ``text`` or raise ``ValueError`` if a store cannot keep it.

    Python strings (and JSON's ``\\uXXXX`` escapes) can hold a lone UTF-16
    surrogate, which is no Unicode character: UTF-8 cannot encode it, so
    SQLite, Redis and IndexedDB-backed peers refuse or mangle it. The error
    text names it escaped (and so is ASCII: it can go into an ack as is).

    >>> check_storable("r é")
    'r é'
    >>> check_storable("a\\ud800", "Room")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: Room is not storable text: a lone UTF-16 surrogate (\\ud800 at character 2); only text ...
    """
    if text.isascii():
        return text
    try:
        text.encode()
    except UnicodeEncodeError as error:
        bad = f"\\u{ord(text[error.start]):04x}"
        raise ValueError(f"{what} is not storable text: a lone UTF-16 surrogate ({bad} at character "
                         f"{error.start + 1}); only text that UTF-8 can encode is stored or sent") from None
    return text


def check_offset(value: Any, name: str = "since") -> int | None:
    """An optional room offset: ``None`` or an int >= 0 (``bool`` is not one)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"Invalid {name}: must be a non-negative integer offset")
    return value


MAX_EPOCH_LENGTH: Final = 64


def check_epoch(value: Any) -> str | None:
    """An optional room-history epoch (see ``server/room_policy.py``): ``None`` or a short str."""
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_EPOCH_LENGTH:
        raise ValueError(f"Invalid epoch: must be a non-empty string of at most {MAX_EPOCH_LENGTH} characters")
    return value
