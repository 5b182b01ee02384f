"""What a browser context did: its requests (``NetLog``) and console (``ConsoleLog``).

    >>> log = NetLog(); log.attach(context, page)      # doctest: +SKIP
    >>> page.goto(url); assert log.offsite == []       # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from playwright.sync_api import BrowserContext, Page, Route, WebSocketRoute
from playwright.sync_api import Request as PwRequest

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def is_local(url: str) -> bool:
    """True for URLs on this machine (and inline data:/blob: URLs)."""
    if url.startswith(("data:", "blob:")):
        return True
    return (urlsplit(url).hostname or "") in LOCAL_HOSTS


@dataclass
class NetLog:
    """Every URL a browser context asked for; off-machine ones are refused.

    HTTP goes through ``context.route``. WebSockets bypass it: off-machine
    ones are refused by ``context.route_web_socket`` and local ones are seen
    through ``page.on("websocket")`` (``context`` has no such event).
    """

    seen: list[str] = field(default_factory=list, repr=False)
    offsite: list[str] = field(default_factory=list)

    def attach(self, context: BrowserContext, page: Page) -> None:
        """Start recording the context, its current page and later pages."""
        context.route("**/*", self._route)
        context.route_web_socket(lambda url: not is_local(url), self._refuse_web_socket)
        self._watch(page)
        context.on("page", self._watch)

    def _watch(self, page: Page) -> None:
        page.on("websocket", lambda ws: self.seen.append(f"WS {ws.url}"))

    def _route(self, route: Route, request: PwRequest) -> None:
        self.seen.append(request.url)
        if is_local(request.url):
            route.continue_()
        else:
            self.offsite.append(request.url)
            route.abort()

    def _refuse_web_socket(self, ws: WebSocketRoute) -> None:
        self.seen.append(f"WS {ws.url}")
        self.offsite.append(f"WS {ws.url}")
        ws.close(code=1008, reason="off-origin WebSocket refused by the test")

    def report(self) -> str:
        """The requests, sorted, with the refused ones first."""
        refused = "\n".join(self.offsite) or "(none)"
        return f"refused off-machine:\n{refused}\nall requests:\n" + "\n".join(sorted(set(self.seen)))


@dataclass
class ConsoleLog:
    """Console messages and uncaught page errors of a context's pages."""

    lines: list[str] = field(default_factory=list, repr=False)

    def attach(self, context: BrowserContext, page: Page) -> None:
        """Collect from the current page and any page opened later."""
        self._watch(page)
        context.on("page", self._watch)

    def _watch(self, page: Page) -> None:
        page.on("console", lambda message: self.lines.append(f"{message.type}: {message.text}"))
        page.on("pageerror", lambda error: self.lines.append(f"pageerror: {error}"))

    @property
    def errors(self) -> list[str]:
        """Only the page errors and console errors."""
        return [line for line in self.lines if line.startswith(("pageerror:", "error:"))]

    def text(self) -> str:
        """All lines, one per line, for printing."""
        return "\n".join(self.lines) or "(no console output)"


def machine_snapshot() -> str:
    """What a renderer crash depends on, read from /proc and the file systems.

    Printed with a "Page crashed" failure, so that a crash seen once in CI
    says whether memory, /dev/shm, /tmp or load was short at that moment.
    """
    import os
    import shutil
    from pathlib import Path

    facts: list[str] = []
    try:
        meminfo = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
        facts.append(f"MemAvailable {meminfo['MemAvailable'].strip()}")
        facts.append("load " + Path("/proc/loadavg").read_text().split()[0])
    except (OSError, KeyError, ValueError):
        pass
    for folder in ("/dev/shm", "/tmp"):
        try:
            facts.append(f"{folder} free {shutil.disk_usage(folder).free // 2**20} MiB")
        except OSError:
            facts.append(f"{folder} missing")
    renderers = 0
    for entry in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            renderers += b"--type=renderer" in entry.read_bytes()
        except OSError:
            continue
    facts.append(f"{renderers} renderer processes, {os.cpu_count()} CPUs")
    return "; ".join(facts)


@dataclass
class CrashLog:
    """Renderer crashes of a context's pages, each with a machine snapshot."""

    crashes: list[str] = field(default_factory=list)

    def attach(self, context: BrowserContext) -> None:
        for page in context.pages:
            self._watch(page)
        context.on("page", self._watch)

    def _watch(self, page: Page) -> None:
        page.on("crash", lambda crashed: self.crashes.append(f"{crashed.url}: {machine_snapshot()}"))
