"""The ``route`` handler tests of the client's outbox send to: it records ``data["n"]`` in
order and answers ``{"n": n}``, so a test compares what ran with what it sent."""

from __future__ import annotations

from typing import Any


def recording(handled: list[Any]) -> Any:
    """``start_server(recording(handled))``: a server whose ``route`` appends each ``n`` it runs."""
    def setup(sx: Any) -> None:
        def route(data: Any, socket: Any) -> dict[str, Any]:
            handled.append(data["n"])
            return {"n": data["n"]}
        sx.on_message("route", route)
    return setup
