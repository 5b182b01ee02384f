"""Processes the fault tests run and kill: fault servers and a private redis-server."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FAULT_SERVER = Path(__file__).parent / "fault_server.py"
REDIS_URL = os.environ.get("SHOTX_TEST_REDIS", "redis://127.0.0.1:6379/0")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    """A fault server subprocess: ``await start()``, ``await kill()`` (SIGKILL), start again on the same port."""

    store: str
    runs: Path
    log: Path
    port: int = field(default_factory=free_port)
    prefix: str = "shotx"
    incarnation: int = 0
    store_timeout: float | None = None  # SxServer(store_timeout=...): the default when None
    kills: list[tuple[int, float]] = field(default_factory=list)  # (incarnation, time.time() at SIGKILL)
    proc: asyncio.subprocess.Process | None = None
    up: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.incarnation += 1
        with open(self.log, "ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, str(FAULT_SERVER), "--port", str(self.port), "--store", self.store,
                "--prefix", self.prefix, "--runs", str(self.runs), "--incarnation", str(self.incarnation),
                *(() if self.store_timeout is None else ("--store-timeout", str(self.store_timeout))),
                stdout=asyncio.subprocess.PIPE, stderr=log)
        assert self.proc.stdout is not None
        line = (await asyncio.wait_for(self.proc.stdout.readline(), 20)).decode()
        assert "listening on" in line, f"fault server did not start: {line!r} (see {self.log})"
        self.up.set()

    async def kill(self) -> None:
        """SIGKILL: no clean-up at all, as a crashed machine or an OOM kill."""
        if self.proc is None or self.proc.returncode is not None:
            return
        self.up.clear()
        self.kills.append((self.incarnation, time.time()))
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.up.clear()
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 15)
            except asyncio.TimeoutError:
                self.proc.kill()
                await self.proc.wait()


def read_runs(path: Path) -> list[dict[str, Any]]:
    """Every line the fault servers wrote; a torn last line (SIGKILL mid-write) is impossible
    with one ``os.write`` of a small line, so any undecodable line is a test failure."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


@dataclass
class PrivateRedis:
    """A ``redis-server`` of the test's own (no persistence), which it may kill and restart."""

    binary: str
    port: int = field(default_factory=free_port)
    proc: asyncio.subprocess.Process | None = None
    restarts: int = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        assert self.proc.stdout is not None
        while True:  # the log line that says it accepts connections
            line = (await asyncio.wait_for(self.proc.stdout.readline(), 10)).decode()
            assert line, "redis-server exited at start-up"
            if "Ready to accept connections" in line:
                break
        asyncio.ensure_future(self._drain())

    async def _drain(self) -> None:
        proc = self.proc
        assert proc is not None and proc.stdout is not None
        while await proc.stdout.readline():
            pass

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGCONT)  # a frozen one (freeze()) dies as well
            self.proc.send_signal(signal.SIGKILL)
            await self.proc.wait()

    def freeze(self) -> None:
        """SIGSTOP: Redis stops answering and its connections stay open (a hung host, a
        partition without resets), so a command on them waits until :meth:`thaw`."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    async def restart(self, while_down: Callable[[], Awaitable[None]] | None = None) -> None:
        """Kill it and start it again, empty; ``while_down`` runs between the two."""
        await self.kill()
        self.restarts += 1
        if while_down is not None:
            await while_down()
        await self.start()
