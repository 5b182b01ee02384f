"""Redis store: room logs that several server processes share.

Each room's log is a Redis Stream whose entry ids are ``0-<offset>``, so
offsets are the stream's own order and a read after an offset is one
``XRANGE``. An append is one Lua script, which Redis runs atomically: it
takes the room's next offset, adds the entry, trims the log to the
retention count and publishes the entry on the store's live channel. Because
the publish happens inside the same script, every process subscribed to the
channel sees a room's entries in offset order, whichever process appended
them; the servers deliver live messages from that channel
(``shared_delivery.py``), not from their own sends.

Durability is Redis's: a write counts once Redis has acknowledged it, and
survives a Redis restart as far as its persistence settings (AOF,
``appendfsync``) say. Remembered replies are written as the SQLite store
writes them, in batches: the replies remembered in one loop turn go in one
round trip on the next, and each ``remember`` returns with that write's
outcome (the server awaits it before the ack leaves, ``replies.py``). A
batch that failed is kept and goes with the next one; until it is written
this process's ``recall`` finds its replies.

A room's epoch (its history's identity, see ``RoomBounds``) is a key of its
own, set only if absent (``SET NX``) by the append script and by ``bounds``,
with a value the caller drew: whichever process gets there first makes it,
and every process then reads that one. A flushed Redis loses it with the log,
and the next look at the room makes a new one.

Keys live under a prefix, so one Redis can serve several deployments (and
tests can clear exactly their own keys).

Bytes in data (``shotx.client.binary``) are kept as binary: a log entry's
``attachments`` field and a remembered reply hold :func:`binary.pack`'s
value, and a live entry is its JSON header, a newline (which JSON text never
holds unescaped) and that value. Those three are read through a connection
that does not decode responses as text (``self.raw``); the rest of the
store's keys hold text only.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as redis
from redis.maint_notifications import MaintNotificationsConfig

from shotx.client import binary

from .store import BinaryReply, LogEntry, RoomBounds, new_epoch

log = logging.getLogger("shotx.server")
_BINARY_REPLY = b"\x00"  # starts a remembered reply with bytes (text replies are JSON: never this)

_APPEND = """
local head = redis.call('HINCRBY', KEYS[1], 'head', 1)
redis.call('SET', KEYS[5], ARGV[8], 'NX')
if ARGV[9] == '' then
  redis.call('XADD', KEYS[2], '0-' .. head, 'id', ARGV[2], 'type', ARGV[3], 'data', ARGV[4], 'ts', ARGV[5])
else
  redis.call('XADD', KEYS[2], '0-' .. head, 'id', ARGV[2], 'type', ARGV[3], 'data', ARGV[4], 'ts', ARGV[5],
             'attachments', ARGV[9])
end
redis.call('SADD', KEYS[3], ARGV[1])
if ARGV[6] == '1' then redis.call('HSET', KEYS[1], 'delivered', head) end
local floor = tonumber(redis.call('HGET', KEYS[1], 'floor') or '0')
if head - floor > tonumber(ARGV[7]) then
  floor = head - tonumber(ARGV[7])
  redis.call('HSET', KEYS[1], 'floor', floor)
  redis.call('XTRIM', KEYS[2], 'MINID', '0-' .. (floor + 1))
end
redis.call('PUBLISH', KEYS[4], cjson.encode({ARGV[1], head, ARGV[2], ARGV[3], ARGV[4], ARGV[5],
                                           redis.call('GET', KEYS[5])}) .. '\\n' .. ARGV[9])
return head
"""

_BOUNDS = """
local bounds = redis.call('HMGET', KEYS[1], 'head', 'floor', 'delivered')
redis.call('SET', KEYS[2], ARGV[1], 'NX')
bounds[4] = redis.call('GET', KEYS[2])
return bounds
"""

_MARK_DELIVERED = """
local head = tonumber(redis.call('HGET', KEYS[1], 'head') or '0')
local wanted = math.min(tonumber(ARGV[1]), head)
if wanted > tonumber(redis.call('HGET', KEYS[1], 'delivered') or '0') then
  redis.call('HSET', KEYS[1], 'delivered', wanted)
end
"""

# Drops the oldest entries while they are older than the cutoff (what the
# other stores do), at most ARGV[2] of them, read a hundred at a time from
# the floor up, and trimmed with one XTRIM MINID (XDEL leaves tombstones that
# every later XRANGE from the start walks again); returns how many went. A
# script holds Redis for every client while it runs: the caller calls again
# while a call drops its whole allowance.
_DROP_OLDER = """
local floor, most, dropped, last = tonumber(redis.call('HGET', KEYS[1], 'floor') or '0'), tonumber(ARGV[2]), 0, nil
local start = '(0-' .. floor
while dropped < most do
  local batch = redis.call('XRANGE', KEYS[2], start, '+', 'COUNT', math.min(100, most - dropped))
  if #batch == 0 then break end
  local newer = false
  for _, entry in ipairs(batch) do
    local fields, ts = entry[2], nil
    for i = 1, #fields, 2 do if fields[i] == 'ts' then ts = tonumber(fields[i + 1]) end end
    if ts >= tonumber(ARGV[1]) then newer = true break end
    last, dropped, start = tonumber(string.match(entry[1], '-(%d+)$')), dropped + 1, '(' .. entry[1]
  end
  if newer then break end
end
if last then
  redis.call('XTRIM', KEYS[2], 'MINID', '0-' .. (last + 1))
  if last > floor then redis.call('HSET', KEYS[1], 'floor', last) end
end
return dropped
"""

# At most ARGV[2] replies older than ARGV[1]; returns how many went.
_FORGET_REPLIES = """
local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #old == 0 then return 0 end
redis.call('HDEL', KEYS[1], unpack(old))
redis.call('ZREM', KEYS[2], unpack(old))
return #old
"""
# Entries (or replies) one script call may drop.
SCRIPT_BATCH = 1000


class RedisStore:
    """The :class:`~shotx.server.store.Store` for several server processes.

    >>> store = RedisStore("redis://127.0.0.1:6379/0", prefix="myapp")  # doctest: +SKIP
    """

    def __init__(self, url: str = "redis://127.0.0.1:6379/0", *, prefix: str = "shotx",
                 max_connections: int = 50) -> None:
        self.url = url
        self.prefix = prefix
        self.max_connections = max_connections
        self.channel = f"{prefix}:live"
        self._rooms_key = f"{prefix}:rooms"  # every room with a log, for retention by age
        self._replies_key, self._reply_times_key = f"{prefix}:replies", f"{prefix}:replies:ts"
        self.redis: Any = None
        self.raw: Any = None  # responses as bytes: for the values that may hold attachments
        self._pubsub: Any = None
        self._scripts: dict[str, Any] = {}
        self._replies: dict[str, tuple[str | BinaryReply, float]] = {}  # field -> (reply, ts), not written yet
        self._batch: asyncio.Future[None] | None = None  # the outcome of this loop turn's replies
        self._writing: set[asyncio.Task[None]] = set()
        self._in_flight: list[dict[str, tuple[str | BinaryReply, float]]] = []  # batches being written

    def _bounds_key(self, room: str) -> str:
        return f"{self.prefix}:room:{room}:bounds"

    def _log_key(self, room: str) -> str:
        return f"{self.prefix}:room:{room}:log"

    def _epoch_key(self, room: str) -> str:
        return f"{self.prefix}:room:{room}:epoch"

    async def open(self) -> None:
        # Blocking: under a burst of concurrent sends, a command waits for a free
        # connection instead of failing with "Too many connections" (the default
        # pool's answer past 100). Named, so CLIENT LIST shows whose they are.
        # Maintenance notifications off: with them on (redis-py 8.1's default over
        # RESP3) the pool hands out connections a restarted Redis closed, and the
        # first command on each fails however long after (redis/redis-py#4252);
        # they are a managed-Redis feature for planned failovers we do not use.
        # Two pools alike but for decoding: text for scripts and replies' bookkeeping, bytes
        # (``raw``) for what may carry attachments (reads, recall, the live channel).
        self.redis, self.raw = redis.Redis.from_pool(self._pool(decode=True)), redis.Redis.from_pool(self._pool(False))
        await self.redis.ping()  # fail here, with Redis's own error, not at the first send
        for name, source in (("append", _APPEND), ("bounds", _BOUNDS), ("mark", _MARK_DELIVERED), ("drop", _DROP_OLDER),
                             ("forget", _FORGET_REPLIES)):
            self._scripts[name] = self.redis.register_script(source)
        # Subscribed before the first append can happen, so no entry of ours goes unseen.
        await self.subscribe()

    def _pool(self, decode: bool) -> redis.BlockingConnectionPool:
        return redis.BlockingConnectionPool.from_url(
            self.url, max_connections=self.max_connections, timeout=30, decode_responses=decode,
            client_name=f"shotx:{self.prefix}", maint_notifications_config=MaintNotificationsConfig(enabled=False))

    async def subscribe(self) -> None:
        """A new subscription, in place when this returns: Redis has confirmed it, so every
        publish from then on reaches it (shared delivery reads the log for what it missed only
        after this)."""
        if self._pubsub is not None:
            await self._pubsub.aclose()
        self._pubsub = self.raw.pubsub(ignore_subscribe_messages=True)
        await self._pubsub.subscribe(self.channel)
        # The confirmation is the first reply on the new connection, before any message.
        await self._pubsub.get_message(timeout=None)

    async def close(self) -> None:
        if self.redis is not None:
            try:
                await self.flushed()
            except Exception as error:  # closing goes on: the connections must still be released
                log.error("replies not yet written to Redis are lost at close: %s", error)
        if self._pubsub is not None:
            await self._pubsub.aclose()
            self._pubsub = None
        for client in (self.redis, self.raw):
            if client is not None:
                await client.aclose()
        self.redis = self.raw = None

    async def append(self, room: str, type_: str, data_json: str, message_id: str, ts: float,
                     delivered: bool, max_messages: int, attachments: tuple[bytes, ...] = ()) -> LogEntry:
        keys = [self._bounds_key(room), self._log_key(room), self._rooms_key, self.channel, self._epoch_key(room)]
        head = await self._scripts["append"](keys=keys, args=[room, message_id, type_, data_json, repr(ts),
                                                              int(delivered), max_messages, new_epoch(),
                                                              binary.pack(attachments)])
        return LogEntry(room, int(head), message_id, type_, data_json, ts, attachments=tuple(attachments))

    async def flushed(self, entry: LogEntry | None = None) -> None:
        """An append is written when it returns (or raises): ``flushed(entry)`` has nothing to
        wait for, and leaves the replies of this loop turn to the write their ``remember`` calls
        wait on. ``flushed()`` waits until every reply remembered so far is written."""
        if entry is not None:
            return
        if self._batch is not None:  # this loop turn's: written now, their remember calls told its outcome
            self._start_reply_write()
        if self._writing:
            await asyncio.gather(*(asyncio.shield(task) for task in list(self._writing)))
        if self._replies:  # kept after a failed write
            await self._write_replies()

    def _start_reply_write(self) -> None:
        """Write the replies remembered this loop turn, in one round trip; tell their writers."""
        done, self._batch = self._batch, None
        task = asyncio.ensure_future(self._write_replies())
        self._writing.add(task)

        def written(task: asyncio.Task[None]) -> None:
            self._writing.discard(task)
            if done is None or done.done():
                return
            if task.cancelled():
                done.cancel()
            elif task.exception() is not None:
                done.set_exception(task.exception())  # type: ignore[arg-type]
                done.exception()  # retrieved: every writer may be gone
            else:
                done.set_result(None)
        task.add_done_callback(written)

    async def _write_replies(self) -> None:
        batch, self._replies = self._replies, {}
        if not batch:
            return
        self._in_flight.append(batch)  # ``recall`` still finds them while they are on their way
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(self._replies_key, mapping={field: _reply_value(reply) for field, (reply, _) in batch.items()})
                pipe.zadd(self._reply_times_key, {field: ts for field, (_, ts) in batch.items()})
                await pipe.execute()
        except BaseException:
            self._replies = {**batch, **self._replies}  # kept for the next write, newer ones winning
            raise
        finally:
            self._in_flight.remove(batch)

    async def read(self, room: str, after: int, limit: int) -> list[LogEntry]:
        rows = await self.raw.xrange(self._log_key(room), f"(0-{after}", "+", count=limit)
        return [LogEntry(room, int(entry_id.partition(b"-")[2]), fields[b"id"].decode(), fields[b"type"].decode(),
                         fields[b"data"].decode(), float(fields[b"ts"]),
                         attachments=binary.unpack(fields.get(b"attachments"))) for entry_id, fields in rows]

    async def bounds(self, room: str) -> RoomBounds:
        head, floor, delivered, epoch = await self._scripts["bounds"](
            keys=[self._bounds_key(room), self._epoch_key(room)], args=[new_epoch()])
        return RoomBounds(int(head or 0), int(floor or 0), int(delivered or 0), str(epoch))

    async def mark_delivered(self, room: str, offset: int) -> None:
        await self._scripts["mark"](keys=[self._bounds_key(room)], args=[offset])

    async def drop_older_than(self, ts: float) -> int:
        """Retention by age, room by room, ``SCRIPT_BATCH`` entries per script call."""
        dropped = 0
        async for room in self.redis.sscan_iter(self._rooms_key, count=500):
            keys = [self._bounds_key(room), self._log_key(room)]
            while True:
                went = int(await self._scripts["drop"](keys=keys, args=[repr(ts), SCRIPT_BATCH]))
                dropped += went
                if went < SCRIPT_BATCH:
                    break
        return dropped

    async def remember(self, principal: str, message_id: str, reply_json: str | BinaryReply, ts: float) -> None:
        self._replies[json.dumps([principal, message_id])] = (reply_json, ts)
        if self._batch is None:  # the first of this loop turn: the write goes on the next one
            self._batch = asyncio.get_running_loop().create_future()
            asyncio.get_running_loop().call_soon(self._start_reply_write)
        await asyncio.shield(self._batch)

    async def recall(self, principal: str, message_id: str) -> str | BinaryReply | None:
        field = json.dumps([principal, message_id])
        for batch in (self._replies, *reversed(self._in_flight)):  # newest first
            kept = batch.get(field)
            if kept is not None:
                return kept[0]
        found = await self.raw.hget(self._replies_key, field)
        if found is None:
            return None
        if not found.startswith(_BINARY_REPLY):
            return str(found.decode())
        text, *attachments = binary.unpack(found[1:])
        return BinaryReply(text.decode(), tuple(attachments))

    async def forget_replies_before(self, ts: float) -> int:
        await self.flushed()
        keys, forgotten = [self._replies_key, self._reply_times_key], 0
        while True:  # ``SCRIPT_BATCH`` replies per script call
            went = int(await self._scripts["forget"](keys=keys, args=[repr(ts), SCRIPT_BATCH]))
            forgotten += went
            if went < SCRIPT_BATCH:
                return forgotten

    async def live_entries(self) -> AsyncIterator[LogEntry]:
        """Every entry appended to any room by any process, in each room's offset order.

        Raises when the subscription's connection fails; calling again
        subscribes anew (redis-py may also reconnect and subscribe again by
        itself, to a Redis that came back empty: each entry carries its
        room's epoch, so the delivery side sees a replaced log). Redis
        publishes at most once, so what was published in between is missed:
        the delivery side fills such gaps from the log.
        """
        if self._pubsub is None or not self._pubsub.subscribed:
            await self.subscribe()
        async for message in self._pubsub.listen():
            if message.get("type") != "message":
                continue
            header, _, packed = message["data"].partition(b"\n")
            room, offset, message_id, type_, data_json, ts, *epoch = json.loads(header)
            yield LogEntry(room, int(offset), message_id, type_, data_json, float(ts), epoch[0] if epoch else "",
                           binary.unpack(packed))


def _reply_value(reply: str | BinaryReply) -> str | bytes:
    """What the replies hash holds: a text reply as it is, one with bytes packed behind a marker."""
    if isinstance(reply, str):
        return reply
    return _BINARY_REPLY + binary.pack([reply.json.encode(), *reply.attachments])
