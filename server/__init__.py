"""Shotx server: ``from shotx.server import SxServer``.

python-socketio and aiohttp are imported here, so this package is for
CPython; the browser only imports ``shotx.client``.
"""

from .memory_store import MemoryStore
from .server import RoomSender, SxServer
from .socket import SxSocket
from .sqlite_store import SqliteStore
from .store import LogEntry, RoomBounds, Store

__all__ = ["LogEntry", "MemoryStore", "RoomBounds", "RoomSender", "SqliteStore", "Store", "SxServer", "SxSocket"]
