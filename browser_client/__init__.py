"""Shotx client: ``from shotx.client import SxClient``.

The same API in CPython (python-socketio, memory or SQLite store) and in the
browser under Pyodide (socket.io-client over the FFI, IndexedDB store).
"""

from .client import RestoredReply, SxClient
from .core import Backoff, Gap, Outbox, OutboxRecord, RoomBook, SeenIds
from .errors import (AuthError, ConnectError, JoinRefused, MessageError, OutboxFull, PayloadTooLarge, SxError,
                     SxTimeoutError)
from .store import ClientStore, MemoryStore, StoredState

__all__ = [
    "AuthError", "Backoff", "ClientStore", "ConnectError", "Gap", "JoinRefused", "MemoryStore", "MessageError", "Outbox",
    "OutboxFull", "OutboxRecord", "PayloadTooLarge", "RestoredReply", "RoomBook", "SeenIds", "StoredState", "SxClient",
    "SxError", "SxTimeoutError",
]
