"""What a message gets back: its handler's reply, and that reply again for a resend.

:func:`run_handler` runs a handler (sync or async, with an optional
timeout) and shapes Shotx's reply, errors included, as JSON text: the form
the store remembers and python-socketio sends (``packets.py``). :class:`ReplyMemory`
makes resends idempotent: a handler runs once per ``(principal, message id)``.

A client resends every message whose ack it did not see. If the first copy
is still being looked up or running, the resend waits for the same result;
if it finished, the remembered reply comes back without running the handler:
from a bounded in-process cache of recent replies, else from the store (where
replies stay for the server's ``reply_window``).

Register before you await: the first copy enters the running map before its
first store call, so a copy arriving while that call is out (a Redis round
trip) waits for the first one's outcome instead of running the handler too,
and copies are answered in the order they came.

An ack leaves only once its reply is durable (``remember`` returns then,
with its own write's outcome; SQLite's group commit lets concurrent acks
share one commit).
So an acknowledged message is never run again, even after a crash; what is
left is the window between a handler's end and that commit: a server killed
inside it sent no ack, and the resend runs the handler again. With
``at_most_once`` that window closes the other way: a durable
:data:`STARTED` marker is written before the handler runs, and a resend that
finds only the marker (the first run may have happened, then a crash) is
answered with ``OUTCOME_UNKNOWN`` (2005) instead of running again. Within
one live process a resend of a still-running message still just waits.

The store is asked only for messages flagged ``meta.resend`` (our client
sets it on anything that may have gone out before: after a reconnect, a
reload, from another tab, and on whatever a flush sends from a durable
outbox, which another tab may have sent), and for every message in ``at_most_once``
mode, which pays a durable write per message anyway. A first send cannot
be in the store, and the SELECT it would cost is a tenth of our layer's
time per message; copies that race each other (two tabs flushing one
outbox) meet in the running map or the cache.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from shotx.client import binary, protocol

from .store import BinaryReply, Store

ReplyText = str | BinaryReply  # a reply as JSON text; one with bytes carries them beside it

log = logging.getLogger("shotx.server")
Reply = dict[str, Any]
T = TypeVar("T")

STARTED = "shotx:started"
"""What ``at_most_once`` remembers before a handler runs. Not JSON, so no reply can be it."""
_MAYBE_RAN = protocol.encode_json(protocol.failure(
    protocol.OUTCOME_UNKNOWN, "Message may have been processed before the server stopped; not run again"))
_NOT_STARTED = protocol.encode_json(protocol.failure(
    protocol.HANDLER_ERROR, "Could not record the message's start durably; its handler did not run"))


def _storable(*texts: str) -> bool:
    """Whether a store can keep every text (``protocol.check_storable``)."""
    try:
        for text in texts:
            protocol.check_storable(text)
    except ValueError:
        return False
    return True


def resend_key(principal: str, client: Any, sid: str) -> str:
    """Whose message ids these are: the principal and the client instance.

    The principal alone (by default the auth data) is shared by every client
    whose auth data is the same (with the default auth handler, every
    client), so one that sent another's message id first would get its reply
    and the other's handler would never run. Our client sends a random id of
    its own in the handshake (``client``, kept in its store with the outbox,
    so resends after a reload or from another tab sharing that outbox still
    match); a client that sends none (a Shotx JavaScript client, which never
    resends) is keyed by its connection.

    >>> resend_key("{}", "c7f3", "s1"), resend_key("{}", None, "s1")
    ('{}\\x1fc7f3', '{}\\x1fsid:s1')
    """
    if isinstance(client, str) and 0 < len(client) <= 64 and client.isascii() and client.isprintable():
        return f"{principal}\x1f{client}"
    return f"{principal}\x1fsid:{sid}"


STORE_TIMEOUT = 10.0  # seconds a reply lookup or write may take (redis-py retries a failed one for a few)


class ReplyUnknown(Exception):
    """This message gets no answer on this connection: the store could not be asked
    whether a copy of it already ran (or that happened to a message before it).

    Neither answer is safe: a reply would have to be made up, and running the
    handler could run it twice. The server ends the connection instead, so the
    client sends the message again once it has reconnected (by then the store
    may answer); the messages behind it on that connection do not run either,
    since they would overtake it. Without this, the copy got no ack at all
    (python-socketio sends none for a handler that raises) on a connection that
    stayed open, and its sender waited for ever.
    """


class Refusal(Exception):
    """Raise it from a handler to answer with ``code`` and ``text`` instead of a 2004.

    For expected refusals (a bad room name, a refused join): logged as one
    line at INFO, not as a traceback, so that a client cannot flood the log.

    >>> Refusal(2006, "Join refused").code
    2006
    """

    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code, self.text = code, text


async def run_handler(handler: Callable[..., Any], args: tuple[Any, ...], timeout: float | None,
                      sid: str, type_: str) -> ReplyText:
    """The handler's reply as JSON text (encoding it here is also the check
    that it can be sent), with the bytes it holds as attachments; a raise, a
    timeout or a reply JSON or UTF-8 cannot carry becomes a ``HANDLER_ERROR``
    reply, logged with ``sid`` and ``type_``."""
    try:
        result = handler(*args)
        if inspect.isawaitable(result):  # a sync handler cannot be timed out: it holds the loop
            result = await (asyncio.wait_for(result, timeout) if timeout else result)
        text, attachments = binary.encode(protocol.success(result))  # also refuses text no store can keep
        return BinaryReply(text, attachments) if attachments else text
    except Refusal as refusal:
        log.info("[%s] %s refused: %s", sid, type_, refusal.text)
        reply = protocol.failure(refusal.code, refusal.text)
    except asyncio.TimeoutError:
        log.error("[%s] %s: handler timed out", sid, type_)
        reply = protocol.failure(protocol.HANDLER_ERROR, f"Handler timed out after {timeout}s")
    except Exception as error:
        log.exception("[%s] %s: handler raised", sid, type_)
        reply = protocol.failure(protocol.HANDLER_ERROR, str(error) or "Error processing message")
    try:
        return protocol.encode_json(reply)
    except ValueError:  # the error's own text cannot be stored or sent (a lone surrogate)
        return protocol.encode_json(protocol.failure(protocol.HANDLER_ERROR))


class ReplyMemory:
    """Runs a handler once per ``(principal, message id)`` and answers every copy with its reply.

    >>> from shotx.server import MemoryStore
    >>> memory = ReplyMemory(MemoryStore(), at_most_once=True)  # then ``await memory.once(...)``
    """

    def __init__(self, store: Store, cache_size: int = 50_000, *, at_most_once: bool = False,
                 cache_bytes: int = 64 * 1024 * 1024, store_timeout: float = STORE_TIMEOUT) -> None:
        self.store = store
        # How long a lookup or a remember may take: a store that never answers (a Redis
        # connection that hangs) must not hold a message, and every message behind it on
        # its connection, for ever.
        self.store_timeout = store_timeout
        # A store whose every call settles within the event loop's own turns (SQLite, memory: no
        # I/O to wait for; ``settles_on_the_loop``) cannot hang a message, and a timer per call
        # would only cost (about 4 % of an ack's CPU): its calls are not timed.
        self._timed = not getattr(store, "settles_on_the_loop", False)
        self.cache_size = cache_size
        # Bytes as well as entries: 200 echoes of 1 MB kept 195 MB when only entries counted.
        self.cache_bytes = cache_bytes
        self._recent_bytes = 0
        self.at_most_once = at_most_once
        # key -> futures of copies waiting for the one being looked up or run
        # (usually none, so the common path creates no future at all)
        self._running: dict[tuple[str, str], list[asyncio.Future[ReplyText]]] = {}
        # JSON text, not dicts: tens of thousands of small dicts would make
        # every full garbage collection walk them.
        self._recent: OrderedDict[tuple[str, str], ReplyText] = OrderedDict()

    async def once(self, principal: str, message_id: str, run: Callable[[], Awaitable[ReplyText]],
                   resent: bool = True) -> ReplyText:
        """The reply (JSON text) for this message, running ``run`` only if nobody did yet.

        Returns once that reply is durable; with ``at_most_once``, a copy whose
        first run left only its start mark gets an ``OUTCOME_UNKNOWN`` reply.
        """
        key = (principal, message_id)  # the id is storable text: protocol.check_request refused others
        waiting = self._running.get(key)
        if waiting is not None:  # an earlier copy is being looked up or run: its outcome is ours
            future: asyncio.Future[ReplyText] = asyncio.get_running_loop().create_future()
            waiting.append(future)
            return await future
        recent = self._recent.get(key)
        if recent is not None:
            return recent
        self._running[key] = waiting = []  # before the first await: copies arriving now wait above
        try:
            text = await self._answer(key, run, resent)
        except BaseException as error:
            for future in waiting:
                if not future.done():
                    future.set_exception(error)
                    future.exception()  # retrieved: its caller may be gone
            raise
        finally:
            del self._running[key]
        for future in waiting:
            if not future.done():
                future.set_result(text)
        return text

    async def _answer(self, key: tuple[str, str], run: Callable[[], Awaitable[ReplyText]],
                      resent: bool) -> ReplyText:
        """The remembered reply, or ``run``'s once it is durable (the first copy only)."""
        if resent or self.at_most_once:
            try:
                remembered = await self._within_timeout(self.store.recall(*key))
            except asyncio.TimeoutError:
                raise ReplyUnknown(f"the store did not answer within {self.store_timeout:g}s") from None
            except Exception as error:  # a Redis that is down or restarting
                raise ReplyUnknown(f"{type(error).__name__}: {error}") from error
            if remembered == STARTED:
                log.warning("message %s was started but has no reply (a crash mid-run, or it runs on "
                            "another process): not run again (at_most_once)", key[1])
                return _MAYBE_RAN
            if remembered is not None:
                self._cache(key, remembered)
                return remembered
        if self.at_most_once and not await self._keep(key, STARTED, "start marker; its handler is not run"):
            return _NOT_STARTED
        text = await run()
        await self._keep(key, text, "reply; a resend would run its handler again")
        self._cache(key, text)
        return text

    async def _keep(self, key: tuple[str, str], text: ReplyText, consequence: str) -> bool:
        """Remember ``text`` for ``key`` and wait until it is durable; False (logged) if the store failed.

        A reply goes out even then: the client that gets it never resends, and
        one that does not would see the handler run again, as without a store.
        """
        try:
            if not _storable(*key):  # the text is: encode_json refused anything else
                raise ValueError("not valid Unicode text (a lone surrogate)")
            # returns once durable: its own outcome
            await self._within_timeout(self.store.remember(*key, text, time.time()))
        except Exception:
            log.exception("%s could not be remembered durably (%s)", key[1], consequence)
            return False
        return True

    def _within_timeout(self, call: Awaitable[T]) -> Awaitable[T]:
        return asyncio.wait_for(call, self.store_timeout) if self._timed else call

    def _cache(self, key: tuple[str, str], text: ReplyText) -> None:
        size = _size(text)
        if size > self.cache_bytes // 4:  # one reply must not empty the cache: the store still has it
            return
        previous = self._recent.pop(key, None)
        self._recent_bytes -= 0 if previous is None else _size(previous)
        self._recent[key] = text
        self._recent_bytes += size
        while len(self._recent) > self.cache_size or self._recent_bytes > self.cache_bytes:
            _, dropped = self._recent.popitem(last=False)
            self._recent_bytes -= _size(dropped)


def _size(reply: ReplyText) -> int:
    """A reply's weight in the cache: characters of text (close enough to bytes for a budget,
    and free to get) plus its attachments' bytes."""
    if isinstance(reply, str):
        return len(reply)
    return len(reply.json) + sum(len(attachment) for attachment in reply.attachments)
