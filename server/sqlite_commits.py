"""Group commits for the SQLite store: every write of one loop turn in one transaction.

Why synchronous calls on the event loop and not a thread or aiosqlite: an
insert into a WAL database with ``synchronous=NORMAL`` costs a few
microseconds, less than a hop to a thread and back. What costs is the
commit, so writes are grouped: every write made during one turn of the event
loop is kept in order and run in one transaction by a callback scheduled on
the next turn (with ``executemany`` for runs of one statement, and as a
plain autocommit statement when the group is a single write); each writer
awaits that commit before it reports success. A sender therefore never
broadcasts what a crash could still take back.

Each write keeps its own outcome. A read in the group's turn runs the
group's writes early, in the open transaction (:meth:`GroupCommit.apply`:
read your writes), and the commit runs the rest. If a statement fails (a
constraint, or a value sqlite3 cannot bind, such as a lone surrogate: not
only ``sqlite3.Error``), the transaction is rolled back and the group is
written again one write at a time, each under a savepoint, so only the bad
write fails; if the commit itself fails, every write of it does. The failure
is logged and reaches the write's own writer (:meth:`GroupCommit.settled`),
never a reader, and success is never reported for a write that is not in
the file. The store is told (``on_failure``) so that it reloads what it
caches from the file.

Failed appends (writes that carry a :class:`LogEntry`) are remembered, the
last ``FAILED_KEPT`` of them, so that a late ``flushed(entry)`` still hears
of its failure.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections import OrderedDict
from collections.abc import Callable
from itertools import groupby
from operator import attrgetter
from typing import Any

from .store import LogEntry

log = logging.getLogger("shotx.server")

# Failed appends remembered for a late ``flushed(entry)`` (failures are rare; this bounds them).
FAILED_KEPT = 1000


class Write:
    """One statement of a group, with its outcome once the group is done."""

    __slots__ = ("sql", "params", "entry", "error", "settled")

    def __init__(self, sql: str, params: tuple[Any, ...], entry: LogEntry | None = None) -> None:
        self.sql, self.params, self.entry = sql, params, entry
        self.error: Exception | None = None
        self.settled = False  # its group is committed or rolled back: ``error`` is final


def entry_key(entry: LogEntry) -> tuple[str, int, str]:
    return entry.room, entry.offset, entry.id  # with the id: an offset may be handed out again


class GroupCommit:
    """The current group of writes on one connection, and its commit (see the module docstring).

    >>> commits = GroupCommit(lambda: sqlite3.connect(":memory:", isolation_level=None), lambda: None)
    >>> commits.pending
    []
    """

    def __init__(self, db: Callable[[], sqlite3.Connection], on_failure: Callable[[], None]) -> None:
        self._db, self._on_failure = db, on_failure
        self._scheduled = False
        self.pending: list[Write] = []  # writes of this group, in order (run or not yet)
        self.applied = 0  # how many of them ran in the open transaction
        # made by the first writer that waits; its result: the group's first failed append's error
        self._done: asyncio.Future[Exception | None] | None = None
        self._appends: dict[tuple[str, int, str], Write] = {}  # this group's appends
        self._failed: OrderedDict[tuple[str, int, str], Exception] = OrderedDict()

    @property
    def db(self) -> sqlite3.Connection:
        return self._db()

    def add(self, sql: str, params: tuple[Any, ...], entry: LogEntry | None = None) -> Write:
        """Add a write to the current group; it runs when the group commits (or a read runs it)."""
        write = Write(sql, params, entry)
        self.pending.append(write)
        if entry is not None:
            self._appends[entry_key(entry)] = write
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.commit)
        return write

    def unapplied(self) -> list[Write]:
        """Writes of the group not run yet (a reader looking for its own writes checks them)."""
        return self.pending[self.applied:]

    def apply(self) -> None:
        """Run the group's writes not run yet, in its open transaction. Never raises:
        a failure goes to the failed write (see the module docstring)."""
        todo = self.unapplied()
        if not todo:
            return
        try:
            if not self.db.in_transaction:
                self.db.execute("BEGIN")
            for sql, run in groupby(todo, key=attrgetter("sql")):
                self.db.executemany(sql, [write.params for write in run])
        except Exception as error:
            log.error("SQLite write failed, its group is written again one write at a time: %r", error)
            self._write_one_by_one()
        self.applied = len(self.pending)

    def _write_one_by_one(self) -> None:
        """Roll the transaction back and run each write of the group under its own savepoint."""
        self._on_failure()
        try:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            self.db.execute("BEGIN")
            for write in self.pending:
                if write.error is None:
                    self.db.execute("SAVEPOINT one_write")
                    try:
                        self.db.execute(write.sql, write.params)
                    except Exception as error:
                        log.error("SQLite write refused: %r (%.80s)", error, write.sql)
                        write.error = error
                        self.db.execute("ROLLBACK TO one_write")
                    self.db.execute("RELEASE one_write")
        except Exception as error:  # the connection itself fails: nothing of the group is made
            self._fail_all(error)

    def _fail_all(self, error: Exception) -> None:
        """Nothing of the group is in the file: every write of it failed with ``error``."""
        log.error("SQLite commit failed, all %d writes of its group are rolled back: %r", len(self.pending), error)
        for write in self.pending:
            write.error = write.error or error
        self._on_failure()
        try:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
        except Exception as failure:  # the connection may be broken; the writers still hear of it
            log.error("SQLite rollback failed: %r", failure)

    def commit(self) -> None:
        """Commit the group now (the scheduled callback, and ``close``)."""
        if not self._scheduled:
            return
        self._scheduled = False
        try:
            if len(self.pending) == 1 and not self.db.in_transaction:
                self._commit_alone(self.pending[0])
            else:
                self.apply()
                if self.db.in_transaction:
                    self.db.execute("COMMIT")
        except BaseException as error:  # even an interrupt: no write is reported made that was not
            self._fail_all(error if isinstance(error, Exception) else RuntimeError(f"commit interrupted: {error!r}"))
            if not isinstance(error, Exception):
                raise
        finally:
            self._settle()

    def _commit_alone(self, write: Write) -> None:
        """One write: its own (autocommit) transaction."""
        try:
            self.db.execute(write.sql, write.params)
        except Exception as error:
            log.error("SQLite write failed: %r (%.80s)", error, write.sql)
            write.error = error
            self._on_failure()

    def _settle(self) -> None:
        """The group is done: its outcomes are final; wake its writers; start a new group."""
        group, done = self.pending, self._done
        self.pending, self.applied, self._done, self._appends = [], 0, None, {}
        first_failed: Exception | None = None
        for write in group:
            write.settled = True
            if write.error is not None and write.entry is not None:
                self._failed[entry_key(write.entry)] = write.error
                first_failed = first_failed or write.error
        while len(self._failed) > FAILED_KEPT:
            self._failed.popitem(last=False)
        if done is not None and not done.done():
            done.set_result(first_failed)

    async def group_settled(self) -> Exception | None:
        """Wait until the current group is done; its first failed append's error, if any."""
        if not self.pending:
            return None
        if self._done is None:
            self._done = asyncio.get_running_loop().create_future()
        done = self._done
        # The commit was queued (call_soon) before this task yields, so it runs
        # first in the next turn and this task resumes in that same turn, done:
        # one loop turn per write instead of two (commit, then wake-up).
        await asyncio.sleep(0)
        return await done

    async def settled(self, writes: list[Write]) -> None:
        """Wait for the group of ``writes`` (all of one group) to be done; raise the first one's error."""
        if writes and not writes[0].settled:
            await self.group_settled()
        for write in writes:
            if write.error is not None:
                raise write.error

    async def flushed(self, entry: LogEntry | None = None) -> None:
        """``Store.flushed``: the entry's own outcome, or every write made before the call's."""
        if entry is None:
            failed = await self.group_settled()
            if failed is not None:
                raise failed
            return
        write = self._appends.get(entry_key(entry))
        if write is not None:
            await self.settled([write])
        elif entry_key(entry) in self._failed:
            raise self._failed[entry_key(entry)]
