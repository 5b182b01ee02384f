"""Shotx server: ``from shotx.server import SxServer``.

python-socketio and aiohttp are imported here, so this package is for
CPython; the browser only imports ``shotx.client``.
"""

from .memory_store import MemoryStore
from .replies import Refusal
from .server import RoomSender, SxServer
from .socket import SxSocket
from .sqlite_store import SqliteStore
from .store import LogEntry, RoomBounds, Store
from .workers import run_workers

__all__ = ["LogEntry", "MemoryStore", "RedisStore", "Refusal", "RoomBounds", "RoomSender", "SqliteStore", "Store", "SxServer",
           "SxSocket", "run_workers"]


def __getattr__(name: str) -> object:
    """``RedisStore`` needs the ``redis`` extra, so it is imported only when asked for."""
    if name == "RedisStore":
        from .redis_store import RedisStore
        return RedisStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
