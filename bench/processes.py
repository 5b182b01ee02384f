"""The processes the benchmark starts, and what it reads of them from /proc.

Kept apart from ``run.py`` (the rounds) and ``scenarios.py`` (what one
measurement does): every child goes through :class:`Children`, so one
``stop_all`` in the runner's ``finally`` leaves nothing behind, and children
get ``PR_SET_PDEATHSIG`` so even a SIGKILLed runner leaves nothing either.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent


def die_with_parent() -> None:
    """In the child, before exec: ask Linux to SIGTERM it if the runner dies, even by SIGKILL."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Children:
    """Every process the benchmark starts, so all of them can be stopped at once."""

    def __init__(self) -> None:
        self.processes: list[subprocess.Popen[str]] = []

    def start(self, command: list[str], **kwargs: Any) -> subprocess.Popen[str]:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                                   cwd=BENCH, preexec_fn=die_with_parent, **kwargs)
        self.processes.append(process)
        return process

    def stop(self, process: subprocess.Popen[str], grace: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds."""
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(grace)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()
        if process in self.processes:
            self.processes.remove(process)

    def stop_all(self) -> None:
        for process in list(self.processes):
            self.stop(process)


def read_line(process: subprocess.Popen[str], what: str) -> str:
    """The child's next stdout line; a child that died says so instead of hanging."""
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        raise RuntimeError(f"{what} exited (code {process.wait()}) before answering")
    return line.strip()


def expect_line(process: subprocess.Popen[str], what: str, word: str) -> str:
    """The child's next line, which must start with ``word``."""
    line = read_line(process, what)
    if not line.startswith(word):
        raise RuntimeError(f"{what} said {line!r}, expected {word}")
    return line


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/<pid>/stat (clock ticks -> s)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_mb(pid: int) -> dict[str, float]:
    """Resident memory now (VmRSS) and its peak so far (VmHWM), in MB, from /proc/<pid>/status."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {key: int(fields[name].split()[0]) / 1024 for key, name in (("rss", "VmRSS"), ("peak", "VmHWM"))}
