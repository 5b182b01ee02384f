"""Browser-test infrastructure: Chromium, demo servers, network and console logs.

Fixtures for tests in this folder (pytest-playwright's sync ``page`` and
``context`` come with them):

* ``demo_server`` (session): base URL of ``python -m shotx.server`` serving
  ``web/dist`` on a free port, with a SQLite store in a temp folder.
* ``start_server`` (per test): ``start_server(store=None, port=0, options=())`` starts
  another server and returns a :class:`DemoServer` (``.url``, ``.stop()``,
  ``.kill()``); restart one on the same store with
  ``start_server(store=old.store, port=old.port)``. All stop after the test.
* ``net_log``: every request of the test's context; anything not to
  127.0.0.1/localhost is aborted and listed in ``.offsite``.
* ``console_log``: console messages and page errors; printed when the test fails.

Missing prerequisites (no Chromium, no ``web/dist``) skip the browser tests
on a developer machine but fail them when ``CI`` is set (``tests/ci_env.py``), so CI can never pass
by running nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import NoReturn

import pytest

from ci_env import in_ci  # tests/ is on sys.path (pyproject.toml)
from demo_servers import ROOT, DemoServer  # noqa: E402
from page_logs import ConsoleLog, CrashLog, NetLog  # noqa: E402
from playwright.sync_api import BrowserContext, Page, Playwright  # noqa: E402

DIST = ROOT / "web" / "dist"
# Debian's binary before its /usr/bin wrapper: the wrapper adds flags of its
# own (--enable-gpu-rasterization next to our --disable-gpu) and its /dev/shm
# size check breaks where findmnt prints two lines (`[: unexpected operator`).
CHROMIUM_CANDIDATES = ("/usr/lib/chromium/chromium", "/usr/bin/chromium")
# The machine's network is closed: without the background-networking flags
# Chromium keeps trying (and failing) to reach Google's services.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    # Shared memory in /tmp, not /dev/shm (64 MB in a default Docker
    # container). Playwright passes it too; said here so that no launcher's
    # defaults decide it.
    "--disable-dev-shm-usage",
]


def skip_or_fail(reason: str) -> NoReturn:
    """Skip on a developer machine; fail in CI, where a skip would look green."""
    if in_ci():
        pytest.fail(f"{reason} (CI is set, so this is a failure, not a skip)", pytrace=False)
    pytest.skip(reason)


def require_bundle() -> Path:
    """web/dist, or a skip/fail telling how to build it."""
    if not (DIST / "pyodide" / "pyodide-lock.json").is_file():
        skip_or_fail(f"{DIST} is missing or incomplete: run `python3 build.py bundle`")
    return DIST


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the browser tests after all others.

    Playwright's sync API keeps its asyncio loop marked as running in the
    main thread until the session ends, so every pytest-asyncio test that
    comes after the first browser test fails with "Runner.run() cannot be
    called from a running event loop" (microsoft/playwright-pytest#167).
    """
    here = Path(__file__).parent
    browser = [item for item in items if here in item.path.parents]
    items[:] = [item for item in items if here not in item.path.parents] + browser


# ------------------------------------------------------------------- Chromium


def system_chromium() -> str | None:
    """The system Chromium: $CHROMIUM if set, else Debian's; None if absent."""
    explicit = os.environ.get("CHROMIUM")
    if explicit:
        if not os.access(explicit, os.X_OK):
            skip_or_fail(f"CHROMIUM={explicit} is not an executable file")
        return explicit
    return next((path for path in CHROMIUM_CANDIDATES if os.access(path, os.X_OK)), None)


@pytest.fixture(scope="session")
def browser_type_launch_args(
    browser_type_launch_args: dict[str, object], playwright: Playwright, browser_name: str
) -> dict[str, object]:
    """Launch the system Chromium where there is one, else Playwright's own.

    `playwright install` cannot download browsers on the project machines,
    so the system browser comes first.
    """
    if browser_name != "chromium":
        return browser_type_launch_args
    args: dict[str, object] = {**browser_type_launch_args, "args": CHROMIUM_ARGS}
    executable = system_chromium()
    if executable is not None:
        return {**args, "executable_path": executable}
    if not Path(playwright.chromium.executable_path).exists():
        skip_or_fail(
            "no Chromium found: `apt-get install chromium`, set CHROMIUM=/path/to/chrome, "
            "or `playwright install chromium`"
        )
    return args


@pytest.fixture(scope="session")
def bundle_dir() -> Path:
    """web/dist, built (or a skip/fail saying how to build it)."""
    return require_bundle()


# -------------------------------------------------------------- demo servers


@pytest.fixture(scope="session")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of one demo server shared by the session's browser tests."""
    store = tmp_path_factory.mktemp("demo-server") / "demo.sqlite3"
    server = DemoServer.start(store, web=require_bundle())
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., DemoServer]]:
    """Factory for extra servers; every one is stopped when the test ends."""
    started: list[DemoServer] = []

    def start(store: Path | str | None = None, port: int = 0, options: Sequence[str] = ()) -> DemoServer:
        server = DemoServer.start(store or tmp_path / "server.sqlite3", web=require_bundle(), port=port,
                                  options=options)
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()


# ------------------------------------------------------- network and console


def failed(request: pytest.FixtureRequest) -> bool:
    """Did the test body fail? (pytest-playwright stores the report as rep_call.)"""
    report = getattr(request.node, "rep_call", None)
    return report is None or report.failed


@pytest.fixture
def net_log(context: BrowserContext, page: Page, request: pytest.FixtureRequest) -> Iterator[NetLog]:
    """The test context's requests; printed if the test fails."""
    log = NetLog()
    log.attach(context, page)
    yield log
    if failed(request):
        print("--- network ---\n" + log.report())


@pytest.fixture
def console_log(
    context: BrowserContext, page: Page, request: pytest.FixtureRequest
) -> Iterator[ConsoleLog]:
    """The test page's console; printed if the test fails."""
    log = ConsoleLog()
    log.attach(context, page)
    yield log
    if failed(request):
        print("--- browser console ---\n" + log.text())


@pytest.fixture(autouse=True)
def crash_log(request: pytest.FixtureRequest) -> Iterator[CrashLog | None]:
    """For every test with a browser context: renderer crashes, with what the
    machine had at that moment, printed when the test fails."""
    if "context" not in request.fixturenames:
        yield None
        return
    log = CrashLog()
    log.attach(request.getfixturevalue("context"))
    yield log
    if log.crashes and failed(request):
        print("--- renderer crashes ---\n" + "\n".join(log.crashes))
