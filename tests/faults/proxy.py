"""A TCP proxy in the test's event loop that cuts, stalls and delays connections.

Clients connect to the proxy; the proxy connects each of them to the first
upstream (of a list) that accepts, so when a server process dies its clients
reconnect through the proxy to whichever server is up. Faults:

* ``cut()`` aborts every live connection (an RST both ways, mid-frame if a
  frame is on its way), as a network drop does;
* ``stall(seconds)`` holds every byte in both directions for a while, then
  lets it through (a congested link; the socket stays up);
* every chunk is delayed by a few milliseconds drawn from the seed;
* ``cut_on_server_bytes(pattern)`` cuts the connection whose server side
  sends ``pattern`` next, dropping that chunk: a precise fault ("the answer
  to this request is lost with its connection"). Server-to-client frames are
  not masked, so a JSON key is visible in them; client frames are masked.

Which fault happens when is the test's decision (a schedule drawn from the
same seed, keyed to progress, not to wall-clock time), so a run's fault
schedule is reproducible from its seed; the exact bytes a cut lands on
depend on timing and are not.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import dataclass, field

CHUNK = 65536


@dataclass
class FaultCounts:
    connections: int = 0
    refused: int = 0  # no upstream accepted: the client sees a drop at once
    cuts: int = 0  # cut() calls
    connections_cut: int = 0
    stalls: int = 0


@dataclass(eq=False)  # hashed by identity: kept in a set of live links
class _Link:
    """One client connection and its upstream, forwarded both ways."""

    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def abort(self) -> None:
        for writer in (self.client, self.upstream):
            transport = writer.transport
            if not transport.is_closing():
                transport.abort()


class FaultProxy:
    """``proxy = await FaultProxy.start([("127.0.0.1", port)], seed)``; clients use ``proxy.url``."""

    def __init__(self, upstreams: list[tuple[str, int]], seed: int, max_delay: float = 0.003) -> None:
        self.upstreams = list(upstreams)
        self.rng = random.Random(seed)
        self.max_delay = max_delay
        self.counts = FaultCounts()
        self._links: set[_Link] = set()
        self._open = asyncio.Event()
        self._open.set()
        self._server: asyncio.Server | None = None
        self._cut_on: tuple[bytes, asyncio.Event] | None = None
        self.port = 0

    @classmethod
    async def start(cls, upstreams: list[tuple[str, int]], seed: int, max_delay: float = 0.003) -> FaultProxy:
        proxy = cls(upstreams, seed, max_delay)
        proxy._server = await asyncio.start_server(proxy._accept, "127.0.0.1", 0)
        proxy.port = proxy._server.sockets[0].getsockname()[1]
        return proxy

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def live(self) -> int:
        return len(self._links)

    def cut(self) -> int:
        """Abort every live connection; returns how many were cut."""
        links = list(self._links)
        for link in links:
            link.abort()
        self.counts.cuts += 1
        self.counts.connections_cut += len(links)
        return len(links)

    def cut_on_server_bytes(self, pattern: bytes) -> asyncio.Event:
        """Arm a one-shot cut: the next server chunk holding ``pattern`` is dropped with its connection."""
        fired = asyncio.Event()
        self._cut_on = (pattern, fired)
        return fired

    async def stall(self, seconds: float) -> None:
        """Hold all traffic for ``seconds`` (new bytes wait; nothing is dropped)."""
        self.counts.stalls += 1
        self._open.clear()
        try:
            await asyncio.sleep(seconds)
        finally:
            self._open.set()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for link in list(self._links):
            link.abort()
            for task in link.tasks:
                task.cancel()
        tasks = [task for link in list(self._links) for task in link.tasks]
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _connect_upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        for host, port in self.upstreams:
            try:
                return await asyncio.open_connection(host, port)
            except OSError:
                continue
        return None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.counts.connections += 1
        upstream = await self._connect_upstream()
        if upstream is None:
            self.counts.refused += 1
            writer.transport.abort()
            return
        up_reader, up_writer = upstream
        link = _Link(writer, up_writer)
        delays = random.Random(self.rng.random())  # per connection: draws do not race across links
        link.tasks = [asyncio.ensure_future(self._pipe(reader, up_writer, link, delays, False)),
                      asyncio.ensure_future(self._pipe(up_reader, writer, link, delays, True))]
        self._links.add(link)
        try:
            await asyncio.gather(*link.tasks, return_exceptions=True)
        finally:
            self._links.discard(link)
            link.abort()

    def _armed_cut(self, chunk: bytes) -> bool:
        if self._cut_on is None or self._cut_on[0] not in chunk:
            return False
        self._cut_on[1].set()
        self._cut_on = None
        self.counts.cuts += 1
        self.counts.connections_cut += 1
        return True

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: _Link,
                    delays: random.Random, from_server: bool) -> None:
        try:
            while True:
                chunk = await reader.read(CHUNK)
                if not chunk or (from_server and self._armed_cut(chunk)):
                    break
                if self.max_delay:
                    await asyncio.sleep(delays.random() * self.max_delay)
                await self._open.wait()
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            link.abort()  # one side gone: the other goes too, as a dropped link would
