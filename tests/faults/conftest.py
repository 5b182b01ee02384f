"""Fault injection: real server processes killed with SIGKILL, a cutting proxy, real Redis.

Seeded: ``SHOTX_FAULT_SEED=<int>`` replays a run's fault schedule (each test
prints its seed and a digest of its schedule). ``SHOTX_SOAK=1`` (or
``--soak`` when this folder is on the command line) runs the long version.
Redis tests skip without a Redis on a laptop and fail when ``CI`` is truthy.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from ci_env import TRUTHY, in_ci
from redis_keys import own_prefix

from fault_processes import REDIS_URL, PrivateRedis, ServerProcess


IN_CI = in_ci()


def truthy(name: str) -> bool:
    """An environment flag read as CI is (tests/ci_env.py)."""
    return os.environ.get(name, "").strip().lower() in TRUTHY


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--soak", action="store_true", default=False,
                     help="fault tests: the long run (10,000 sends, 50 cuts, 3 kills); also SHOTX_SOAK=1")


@pytest.fixture
def soak(request: pytest.FixtureRequest) -> bool:
    option = False
    with contextlib.suppress(ValueError):
        option = bool(request.config.getoption("--soak"))
    return option or truthy("SHOTX_SOAK")


@pytest.fixture
def seed(request: pytest.FixtureRequest) -> int:
    """The run's seed: ``SHOTX_FAULT_SEED`` or a fresh one (printed in the figures line)."""
    given = os.environ.get("SHOTX_FAULT_SEED")
    return int(given) if given else random.SystemRandom().randrange(1, 2**31)


@pytest.fixture
def rng(seed: int, request: pytest.FixtureRequest) -> random.Random:
    """One Random per test, from the seed and the test's name (tests do not share draws)."""
    return random.Random(f"{seed}:{request.node.name}")


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Any:
    """``figures("faults: sends=...")``: one line to the terminal whether or not ``-s`` is given."""
    plugins = request.config.pluginmanager
    reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")

    def write(line: str) -> None:
        held = capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext()
        with held:  # past pytest's capture, so the line shows without -s
            if reporter is not None:
                reporter.write("\n" + line + "\n")  # on a line of its own, after the progress dots
            else:
                print(line, flush=True)
        path = os.environ.get("SHOTX_FAULT_FIGURES")
        if path:
            with open(path, "a", encoding="utf-8") as out:
                out.write(f"{request.node.nodeid} {line}\n")

    return write


@pytest.fixture
async def servers(tmp_path: Path) -> AsyncIterator[Any]:
    """``make(store, runs=..., prefix=...)`` -> a not yet started :class:`ServerProcess`; all stopped afterwards."""
    made: list[ServerProcess] = []

    def make(store: str, runs: Path | None = None, prefix: str = "shotx",
             store_timeout: float | None = None) -> ServerProcess:
        index = len(made)  # incarnations 1, 2, ... for the first server, 101, 102, ... for the second
        server = ServerProcess(store, runs or tmp_path / "runs.jsonl", tmp_path / f"server-{index}.log",
                               prefix=prefix, incarnation=100 * index, store_timeout=store_timeout)
        made.append(server)
        return server

    yield make
    for server in made:
        await server.stop()


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of this test's own on the machine's Redis; its keys are deleted afterwards."""
    with own_prefix("faults", REDIS_URL) as prefix:
        yield prefix


@pytest.fixture
async def private_redis() -> AsyncIterator[PrivateRedis]:
    binary = shutil.which("redis-server")
    if binary is None:
        if IN_CI:
            pytest.fail("CI needs redis-server on PATH for the Redis restart test")
        pytest.skip("no redis-server on PATH")
    server = PrivateRedis(binary)
    await server.start()
    yield server
    await server.kill()


@pytest.fixture
def client_log(caplog: pytest.LogCaptureFixture) -> Any:
    """``client_log()`` -> counts of what the clients in this process logged: errors, failed joins."""
    caplog.set_level("WARNING", logger="shotx")
    # SHOTX_FAULT_CLIENT_LOG=DEBUG lets the clients' lower records reach pytest's --log-file
    # (the counts below still see WARNING and up only: caplog's handler stays at WARNING)
    logging.getLogger("shotx").setLevel(os.environ.get("SHOTX_FAULT_CLIENT_LOG", "WARNING"))

    def counts() -> dict[str, int]:
        mine = [r for r in caplog.records if r.name.startswith("shotx.client")]
        return {"client_errors": sum(r.levelname == "ERROR" for r in mine),
                "join_failures": sum("join" in r.getMessage() and "failed" in r.getMessage() for r in mine)}

    return counts
