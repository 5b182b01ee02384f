"""The exceptions a Shotx client raises.

One root, so that ``except SxError`` catches everything the library itself
decided to refuse::

    SxError(code, message)
    ├── AuthError        AUTH_NULL, AUTH_FAIL, AUTH_ERROR: the server refused the token
    ├── MessageError     2001-2007: the server answered with an error (a send's 2007 is retried, not raised)
    │   └── JoinRefused  2006: the server refused a room (final: not rejoined)
    ├── SxTimeoutError   TIMEOUT: no answer in time (also a builtin TimeoutError)
    ├── PayloadTooLarge  PAYLOAD_TOO_LARGE: refused before it was queued
    └── OutboxFull       OUTBOX_FULL: no room in the outbox (its bounds, or the browser's quota)

Codes are the exact Shotx wire values, so a handler written against the
JavaScript library reads the same codes here.
"""

from __future__ import annotations

from typing import Any


class SxError(Exception):
    """Base of every Shotx error; ``code`` is the Shotx code (str or int).

    >>> SxError(2003, "Unknown message type: x").code
    2003
    """

    def __init__(self, code: str | int, message: str | None = None) -> None:
        self.code = code
        self.message = message if message is not None else str(code)
        super().__init__(self.message)


class AuthError(SxError):
    """The server refused the connection: ``code`` is AUTH_NULL, AUTH_FAIL or AUTH_ERROR.

    The text is the bare code, as the JavaScript client's ``error.message`` is.
    """

    def __init__(self, code: str) -> None:
        super().__init__(code, code)


class MessageError(SxError):
    """The server answered a message with ``success: false``.

    >>> MessageError(2004, "boom").code
    2004
    """

    def __init__(self, code: int, message: str, reply: Any = None) -> None:
        super().__init__(code, message)
        self.reply = reply


class JoinRefused(MessageError):
    """The server refused to let this client into a room (``authorize_join``).

    Final: the client forgets the room and does not ask again after a
    reconnect; join it again when whatever refused it changed.
    """


class SxTimeoutError(SxError, TimeoutError):
    """No answer within the timeout; the text reads ``TIMEOUT: <type> (<ms>ms)``.

    It is also a :class:`TimeoutError`, so ``asyncio`` habits keep working.
    A timed-out send stays in the outbox until its ack arrives: the timeout
    only stops the caller from waiting.
    """

    def __init__(self, what: str, seconds: float) -> None:
        self.what = what
        self.seconds = seconds
        super().__init__("TIMEOUT", f"TIMEOUT: {what} ({round(seconds * 1000)}ms)")


class PayloadTooLarge(SxError):
    """The encoded message exceeds the server's limit; nothing was queued."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__("PAYLOAD_TOO_LARGE", f"PAYLOAD_TOO_LARGE: {size} bytes > {limit} bytes")
        self.size = size
        self.limit = limit


class OutboxFull(SxError):
    """No room in the outbox for this message; nothing of it was stored and
    everything queued before it is still queued.

    ``reason`` says which bound: ``"count"`` (``max_queued`` messages),
    ``"bytes"`` (``max_queued_bytes``), or ``"quota"`` (the browser refused
    to store more: IndexedDB's ``QuotaExceededError``). Send again once
    queued messages have been acknowledged.

    >>> OutboxFull("count", "OUTBOX_FULL: 10 messages queued (max_queued=10)").code
    'OUTBOX_FULL'
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__("OUTBOX_FULL", message)
        self.reason = reason


class ConnectError(SxError):
    """The transport could not reach the server and reconnection is off."""

    def __init__(self, message: str) -> None:
        super().__init__("CONNECT_ERROR", f"CONNECT_ERROR: {message}")
