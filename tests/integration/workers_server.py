"""A ``--workers`` server as a test runs it: a real primary process and its real workers.

``WorkersServer(argv)`` starts ``python <argv>``, reads its stdout (the
primary prints ``Shotx worker <i> (pid <p>) ready`` for every worker start
and a ``listening on http://host:port`` line once all run), and knows every
process below the primary, so a test can prove none is left.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

READY = re.compile(r"Shotx worker (\d+) \(pid (\d+)\) ready")
LISTENING = re.compile(r"listening on http://[\d.]+:(\d+)")


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (Linux ``/proc``)."""
    found: set[int] = set()
    todo = [pid]
    while todo:
        parent = todo.pop()
        try:
            children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    """Running and not a zombie (a container's init may not reap at once)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@dataclass
class WorkersServer:
    argv: list[str]
    stderr_path: Path
    port: int = 0
    pids: dict[int, int] = field(default_factory=dict)  # worker index -> pid of its latest start
    seen: set[int] = field(default_factory=set)  # every pid the server ran, the primary's helpers included
    proc: asyncio.subprocess.Process | None = None
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _reader: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, timeout: float = 60.0) -> None:
        with open(self.stderr_path, "ab") as stderr:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, *self.argv, stdout=asyncio.subprocess.PIPE, stderr=stderr)
        self._reader = asyncio.ensure_future(self._read())
        await self.wait_for(lambda: self.port != 0 or self.proc.returncode is not None, timeout)
        assert self.port, f"the server did not start: {self.stderr_path.read_text()}"
        self.seen |= descendants(self.proc.pid)

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        async for raw in self.proc.stdout:
            line = raw.decode()
            async with self._changed:
                if match := READY.search(line):
                    self.pids[int(match[1])] = int(match[2])
                elif match := LISTENING.search(line):
                    self.port = int(match[1])
                self._changed.notify_all()
        await self.proc.wait()
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(self, predicate, timeout: float) -> None:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(predicate), timeout)

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.seen |= descendants(self.proc.pid)
        self.proc.send_signal(signum)

    async def stop(self, timeout: float = 20.0) -> float:
        """SIGTERM the primary; seconds until it exited."""
        assert self.proc is not None
        began = time.monotonic()
        if self.proc.returncode is None:
            self.signal(signal.SIGTERM)
        await asyncio.wait_for(self.proc.wait(), timeout)
        if self._reader is not None:
            await asyncio.wait_for(self._reader, timeout)
        return time.monotonic() - began

    async def left_over(self, within: float = 10.0) -> set[int]:
        """The processes of this server still alive ``within`` seconds from now (each one's
        end is its own: the workers and multiprocessing's resource tracker exit on their own)."""
        deadline = time.monotonic() + within
        while (running := {pid for pid in self.seen | set(self.pids.values()) if alive(pid)}) \
                and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return running

    async def close(self) -> None:
        """Whatever the test did: nothing of this server keeps running."""
        if self.proc is not None and self.proc.returncode is None:
            await self.stop()
        for pid in self.seen | set(self.pids.values()):
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
