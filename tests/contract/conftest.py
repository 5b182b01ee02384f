"""Fixtures for the contract tests: real demo servers as subprocesses."""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "browser"))
from demo_servers import ROOT, DemoServer  # noqa: E402

WEB = ROOT / "web" / "dist"  # served if built; the contract needs only /shotx/ and /demo/*


@pytest.fixture
def start_demo_server(tmp_path: Path) -> Iterator[Callable[[], DemoServer]]:
    """``start_demo_server()`` -> a DemoServer on a fresh SQLite file; all stopped afterwards."""
    started: list[DemoServer] = []

    def start() -> DemoServer:
        server = DemoServer.start(tmp_path / f"contract-{len(started)}.sqlite3", web=WEB)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def dead_url() -> str:
    """A loopback URL where nothing listens (a port just bound and closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"
