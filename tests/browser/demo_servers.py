"""Demo servers as subprocesses: ``python -m shotx.server`` on a free port.

The server's CLI contract: ``python -m shotx.server [--host H] [--port P]
[--store PATH|memory] [--web DIR]``; once listening it prints one line
``Shotx demo server listening on http://H:P`` with the real port.

    >>> server = DemoServer.start(store="memory", web=Path("web/dist"))  # doctest: +SKIP
    >>> server.url, server.port                                          # doctest: +SKIP
    ('http://127.0.0.1:41235', 41235)
    >>> server.stop()                                                    # doctest: +SKIP
"""

from __future__ import annotations

import collections
import ctypes
import json
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]
LISTENING = re.compile(r"Shotx demo server listening on (http://\S+)")
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0

# Loaded here, not in the forked child, where loading a library is unsafe.
LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None
PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In the child: get SIGTERM if pytest dies, so no server outlives a run.

    Fixture teardown stops servers normally; this covers a pytest that is
    killed outright. Linux only; elsewhere teardown alone has to do.
    """
    if LIBC is not None:
        LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class DemoServer:
    """A running ``python -m shotx.server`` subprocess.

    Its output is drained by a thread all along (a full pipe would block
    the server) and the last lines are kept for failure messages.
    """

    process: subprocess.Popen[str]
    store: Path | str
    url: str = ""
    output: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=200))
    # Every 'HANDLED <data>' line (--print-handled), complete once the output has ended.
    handled_lines: list[Any] = field(default_factory=list)
    output_ended: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def start(cls, store: Path | str, web: Path, port: int = 0, options: Sequence[str] = ()) -> DemoServer:
        """Start a server (port 0: any free one) and wait for its listening line;
        ``options`` are more command-line options (``["--messages-per-second", "100"]``)."""
        cmd = [sys.executable, "-m", "shotx.server", "--host", "127.0.0.1",
               "--port", str(port), "--store", str(store), "--web", str(web), *options]
        process = subprocess.Popen(
            cmd, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, bufsize=1, preexec_fn=die_with_parent,
        )
        server = cls(process=process, store=store)
        server.url = server._wait_for_listening(server._drain())
        return server

    @property
    def port(self) -> int:
        """The port the server really listens on."""
        return urlsplit(self.url).port or 80

    def _drain(self) -> queue.Queue[str | None]:
        """Read the output in a thread; lines go to a queue and to .output."""
        lines: queue.Queue[str | None] = queue.Queue()

        def pump() -> None:
            assert self.process.stdout is not None
            for line in self.process.stdout:
                self.output.append(line.rstrip("\n"))
                if line.startswith("HANDLED "):
                    self.handled_lines.append(json.loads(line[len("HANDLED "):]))
                lines.put(line)
            self.output_ended.set()
            lines.put(None)

        threading.Thread(target=pump, name="demo-server-output", daemon=True).start()
        return lines

    def _wait_for_listening(self, lines: queue.Queue[str | None]) -> str:
        """The URL from the listening line; stop the process if none comes."""
        try:
            while (line := lines.get(timeout=START_TIMEOUT)) is not None:
                if match := LISTENING.search(line):
                    return match.group(1)
        except queue.Empty:
            pass
        self.stop()
        raise RuntimeError(
            f"demo server did not report listening within {START_TIMEOUT}s "
            f"(exit {self.process.returncode}); output:\n" + "\n".join(self.output)
        )

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not exit in time; always reaped."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process.wait()

    def kill(self) -> None:
        """SIGKILL, as a crash would; for tests of what survives one."""
        self.process.kill()
        self.process.wait()

    def handled_until_the_end(self) -> list[Any]:
        """What ``--print-handled`` printed, read to the end of the output (the process has ended)."""
        assert self.process.poll() is not None, "the server still runs: its output has not ended"
        if not self.output_ended.wait(STOP_TIMEOUT):
            raise RuntimeError("the server's output did not end after the process did")
        return list(self.handled_lines)
