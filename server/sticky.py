"""Sticky sessions for several worker processes on one port: the decisions, no I/O.

Why: Engine.IO's long-polling transport (where socket.io-client starts, and
its fallback) sends every request of a session as a separate HTTP request,
and every one must reach the process that holds the session. The primary
(``workers.py``) accepts each TCP connection, reads its request line, and
hands the connection to the worker this module names:

* a request whose query carries ``sid=`` goes to the worker whose index the
  sid starts with: each worker makes its sids ``<index>.<engine.io id>``
  (``engineio_sockets.tag_session_ids``), so no table of sessions is kept
  and a restarted primary would route the same way;
* anything else (a handshake, a WebSocket-only client's first request, a
  static file) goes round-robin over the workers that are running;
* a sid of a worker that is not running (it died, it is being restarted)
  goes round-robin too: that worker's sessions are gone with it, and the
  worker that gets the request answers ``Invalid session``, on which the
  client makes a new handshake.

Every HTTP response of a worker closes its connection (``Connection:
close``), so one TCP connection never carries requests of two sessions: a
browser or Node reuses idle keep-alive connections across sessions, and
the primary only sees a connection's first request. WebSocket connections
are one request and stay open.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

SEPARATOR = "."  # not in engine.io's base64url alphabet, unreserved in a URL
MAX_REQUEST_LINE = 8190  # aiohttp's own limit for the request line


class RequestLineError(ValueError):
    """The first bytes of a connection are not the start of an HTTP request."""


def tagged_sid(index: int, engineio_id: str) -> str:
    """The sid a worker gives out: ``tagged_sid(1, "abc") == "1.abc"``."""
    return f"{index}{SEPARATOR}{engineio_id}"


def request_line(first_bytes: bytes) -> bytes | None:
    """The request line once it has fully arrived, else ``None`` (read more).

    >>> request_line(b"GET /x HTTP/1.1\\r\\nHost: a\\r\\n")
    b'GET /x HTTP/1.1'
    >>> request_line(b"GET /x HT") is None
    True
    """
    end = first_bytes.find(b"\n")
    if end < 0:
        if len(first_bytes) > MAX_REQUEST_LINE:
            raise RequestLineError(f"no request line in the first {len(first_bytes)} bytes")
        return None
    return first_bytes[:end].rstrip(b"\r")


def worker_of_request(line: bytes) -> int | None:
    """The worker index a request's ``sid`` names, or ``None`` (no sid, or not one of ours).

    >>> worker_of_request(b"GET /shotx/?EIO=4&transport=polling&sid=1.AbC HTTP/1.1")
    1
    >>> worker_of_request(b"GET /shotx/?EIO=4&transport=polling HTTP/1.1") is None
    True
    """
    if b"sid=" not in line:
        return None
    parts = line.split(b" ")
    if len(parts) != 3:
        return None
    query = parse_qs(urlsplit(parts[1].decode("latin-1")).query)
    sid = query.get("sid", [""])[0]
    tag, separator, _ = sid.partition(SEPARATOR)
    if not separator or not tag.isdigit():
        return None
    return int(tag)


class RoundRobin:
    """Which running worker gets a connection; pure, so a unit test drives it without a loop.

    >>> pick = RoundRobin(3)
    >>> pick.mark_running(0); pick.mark_running(2)
    >>> [pick.choose(None), pick.choose(None), pick.choose(2), pick.choose(1)]
    [0, 2, 2, 0]
    """

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.workers = workers
        self.running: set[int] = set()
        self._next = 0

    def mark_running(self, index: int) -> None:
        self.running.add(index)

    def mark_stopped(self, index: int) -> None:
        self.running.discard(index)

    def choose(self, wanted: int | None) -> int | None:
        """``wanted`` if it runs; else the next running worker in turn; ``None`` if none runs."""
        if wanted is not None and wanted in self.running:
            return wanted
        for _ in range(self.workers):
            index = self._next
            self._next = (self._next + 1) % self.workers
            if index in self.running:
                return index
        return None
