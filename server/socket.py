"""The ``socket`` handed to auth and message handlers, as in Shotx."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .limits import ConnectionUse, Limits


@dataclass
class SxSocket:
    """One connected client: ``sid``, the WSGI-style ``environ``, the handshake
    ``auth`` object (``handshake["token"]``) and, once accepted, ``auth`` =
    what the auth handler returned.
    """

    sid: str
    environ: dict[str, Any]
    handshake: dict[str, Any]
    sio: Any = field(repr=False)
    auth: Any = None
    # Whose message ids these are, for idempotent resends; set once at connect
    # because the principal function (JSON of the auth data) costs a few µs a call.
    principal: str | None = None
    # The key of its resends: the principal and its client instance (replies.resend_key).
    resend_key: str = ""
    # What it uses now against the server's per-connection limits (limits.py).
    use: ConnectionUse = field(default_factory=lambda: ConnectionUse(Limits()), repr=False)
    # Set when a message of it could not be answered and its connection is being ended:
    # the messages behind it must not run before it, so none of them runs (all come again).
    ending: bool = False

    @property
    def id(self) -> str:
        return self.sid

    @property
    def rooms(self) -> list[str]:
        return [room for room in self.sio.rooms(self.sid) if room != self.sid]

    async def emit(self, event: str, data: Any = None) -> None:
        """Send a raw event to this client only."""
        await self.sio.emit(event, data, to=self.sid)
