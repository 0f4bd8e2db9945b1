"""The event log's hot path: group commit of appends, and event reads.

**Group commit.** Every AppendTaskEvents call enqueues its events and awaits a future. A commit
lane (its own connection) takes every call queued so far and commits the whole group at once, so
one database round trip serves many calls. Under saturation the lane lingers while calls keep
arriving (up to 10 ms), so groups grow and a commit's fixed cost is shared by more calls. Each
call is checked on its own (visibility, task ended, lease) with the domain rules; a call that
fails a check fails alone.

**Ordering.** A task's `last_seq` is its event counter (Temporal's next_event_id). Seqs are
allocated only by a statement that updates the task row, and the row lock that update takes is
held until commit. So a task's appends serialize on its row, seq order is commit order, and a
rolled-back append leaves no gap (the counter rolls back with it).

**Fast path: one statement, one round trip.** The lane keeps each task's append-relevant state
(owner, status, lease, `state_version`) from an earlier locked read. The domain rules are checked
against it in Python; then one autocommit statement, for every task of the group, advances
`last_seq` only where `state_version` is unchanged (every status change bumps it) and, for a
worker, the lease has not expired; inserts the events at the seqs it allocated; and sends one
notification naming every task and its new tail. A task whose guard fails (its state changed, or
one of its client keys already exists) is simply not advanced, and its calls take the slow path.

**Slow path: lock, then decide.** `BEGIN`; lock the tasks' rows (`FOR UPDATE`, in id order so
the lanes of several replicas cannot deadlock) and look up the client keys; decide each call against the locked state;
write as above; `COMMIT`. Two round trips, pipelined. Client keys are read after the lock is
taken, so a concurrent retry waits for the first attempt and then finds its key (READ COMMITTED:
each statement sees what committed before it began); a known key answers its first receipt and
writes nothing. The unique index on (task_id, client_key) is the backstop: if a race slips past
the fast path's key guard, the statement fails and its calls are retried on the slow path.

If the database rejects a whole group, its calls are retried one by one, so only the offending
call fails.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import psycopg

from nexus.kit.errors import NexusError, Unavailable
from services.runtime.domain import leases
from services.runtime.domain.events import Event, NewEvent, Receipt
from services.runtime.domain.tasks import Actor, require_visible, require_writable
from services.runtime.store import pg
from services.runtime.store.tables import NOTIFY_CHANNEL
from services.runtime.store.tasks import MAX_NOTIFY_PAYLOAD, NOTIFY_EVERYTHING, notify_payload

log = logging.getLogger("nexus.runtime.events")

Conn = psycopg.AsyncConnection[Any]

_LOCK = (
    "SELECT id::text, user_id, status, last_seq, lease_id::text, lease_holder,"
    " coalesce(lease_expires_at > now(), false), now(), state_version"
    " FROM runtime.task WHERE id = ANY(%s::uuid[]) ORDER BY id FOR UPDATE"
)
_KEYS = (
    "SELECT e.task_id::text, e.client_key, e.seq, e.created_at FROM runtime.task_event e"
    " JOIN unnest(%s::uuid[], %s::text[]) AS k(task_id, client_key)"
    " ON e.task_id = k.task_id AND e.client_key = k.client_key"
)
# The events of a group travel as one JSON document: cheaper to send than eight arrays.
_EVENTS = "json_to_recordset(%s::json) AS e(t uuid, s int8, r text, y text, c text, p jsonb, m jsonb, k text)"
_WRITE = (
    "WITH ins AS ("
    " INSERT INTO runtime.task_event (task_id, seq, role, type, content_text, render_payload, metadata, client_key)"
    f" SELECT t, s, r, y, c, p, m, k FROM {_EVENTS}"
    "), adv AS ("
    " UPDATE runtime.task AS t SET last_seq = v.last_seq, last_active_at = now(), updated_at = now()"
    " FROM unnest(%s::uuid[], %s::int8[]) AS v(id, last_seq) WHERE t.id = v.id"
    f") SELECT pg_notify('{NOTIFY_CHANNEL}', %s)"
)
# The fast path: `e.s` is the event's offset within its task's part of the group.
_FAST = (
    "WITH v AS (SELECT * FROM json_to_recordset(%s::json)"
    " AS v(id uuid, n int8, version int4, worker bool, keys text[])),"
    " adv AS ("
    " UPDATE runtime.task AS t SET last_seq = t.last_seq + v.n, last_active_at = now(), updated_at = now()"
    " FROM v WHERE t.id = v.id AND t.state_version = v.version"
    " AND (NOT v.worker OR t.lease_expires_at > now())"
    " AND (v.keys IS NULL OR NOT EXISTS ("
    "   SELECT 1 FROM runtime.task_event x WHERE x.task_id = t.id AND x.client_key = ANY (v.keys)))"
    " RETURNING t.id, t.last_seq - v.n AS base, t.last_seq AS tail"
    "), ins AS ("
    " INSERT INTO runtime.task_event (task_id, seq, role, type, content_text, render_payload, metadata, client_key)"
    f" SELECT e.t, adv.base + e.s, e.r, e.y, e.c, e.p, e.m, e.k FROM {_EVENTS} JOIN adv ON adv.id = e.t"
    "), note AS ("
    " SELECT pg_notify("
    f"'{NOTIFY_CHANNEL}', CASE WHEN count(*) > {MAX_NOTIFY_PAYLOAD // 48} THEN '{NOTIFY_EVERYTHING}'"
    " ELSE string_agg(adv.id::text || ':' || adv.tail, ',') END) FROM adv HAVING count(*) > 0"
    ") SELECT adv.id::text, adv.base, now() FROM adv, note"
)
_READ = (
    "SELECT seq, role, type, content_text, render_payload, metadata, client_key, created_at"
    " FROM runtime.task_event WHERE task_id = %s AND seq > %s AND seq < %s ORDER BY seq LIMIT %s"
)
_TAIL = "SELECT user_id, status, last_seq FROM runtime.task WHERE id = %s"

_NO_UPPER = 2**62
# States remembered for the fast path; the least recently appended-to are forgotten first.
STATE_CACHE_SIZE = 100_000


class Sink(Protocol):
    """Where committed events go in this process: the stream hub."""

    def watching(self, task_id: str) -> bool: ...

    def publish(self, task_id: str, events: list[Event]) -> None: ...

    def committing(self, task_ids: list[str]) -> Sequence[object]:
        """Marks local commits in flight; returns what `settled` must be given back."""
        ...

    def settled(self, marked: Sequence[object]) -> None: ...


def _shutting_down() -> Unavailable:
    return Unavailable("the server is shutting down; retry", reason="SHUTTING_DOWN")


class _Nowhere:
    def watching(self, task_id: str) -> bool:
        return False

    def publish(self, task_id: str, events: list[Event]) -> None:
        return None

    def committing(self, task_ids: list[str]) -> Sequence[object]:
        return ()

    def settled(self, marked: Sequence[object]) -> None:
        return None


@dataclass(slots=True)
class _Call:
    actor: Actor
    task_id: str
    events: Sequence[NewEvent]
    future: asyncio.Future[list[Receipt]]
    size: int = 0


@dataclass(frozen=True, slots=True)
class _State:
    """What decides whether a task takes appends, as last read under its row lock."""

    owner: str
    status: str
    lease_id: str | None
    holder: str | None
    version: int


@dataclass(slots=True)
class _Plan:
    """What one slow-path transaction writes."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    tails: dict[str, int] = field(default_factory=dict)
    results: list[tuple[_Call, list[Receipt] | NexusError]] = field(default_factory=list)


def _row(task_id: str, seq: int, event: NewEvent) -> dict[str, Any]:
    return {
        "t": task_id,
        "s": seq,
        "r": event.role,
        "y": event.type,
        "c": event.content_text,
        "p": event.render_payload,
        "m": event.metadata,
        "k": event.client_key,
    }


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class EventLog:
    def __init__(
        self,
        url: str,
        *,
        readers: int = 4,
        max_group_calls: int = 256,
        max_group_events: int = 2000,
        linger_step_s: float = 0.001,
        linger_max_s: float = 0.010,
        linger_after: int = 4,
    ) -> None:
        self._url = url
        self._sink: Sink = _Nowhere()
        self._max_group_calls = max_group_calls
        self._max_group_events = max_group_events
        self._linger_step_s = linger_step_s
        self._linger_max_s = linger_max_s
        self._linger_after = linger_after
        self._pending: list[_Call] = []
        self._wake = asyncio.Event()
        self._lane: asyncio.Task[None] | None = None
        self._reads = pg.Connections(url, readers)
        self._states: OrderedDict[str, _State] = OrderedDict()
        self._closing = False
        self._last_group = 0
        self.groups = 0
        self.calls = 0

    def attach(self, sink: Sink) -> None:
        self._sink = sink

    async def start(self) -> None:
        self._lane = asyncio.create_task(self._run_lane(), name="runtime-commit-lane")

    async def stop(self) -> None:
        log.info("event log stopped", extra={"fields": {"groups": self.groups, "calls": self.calls}})
        self._closing = True
        if self._lane is not None:
            self._lane.cancel()
            await asyncio.gather(self._lane, return_exceptions=True)
            self._lane = None
        for call in self._pending:
            if not call.future.done():
                call.future.set_exception(_shutting_down())
        self._pending.clear()
        await self._reads.close()

    # -- appends ------------------------------------------------------------------------------

    async def append(self, actor: Actor, task_id: str, events: Sequence[NewEvent]) -> list[Receipt]:
        """Commits `events` atomically after the task's current tail; returns one receipt each."""
        if self._closing:
            raise _shutting_down()
        future: asyncio.Future[list[Receipt]] = asyncio.get_running_loop().create_future()
        self._pending.append(_Call(actor, task_id, events, future, len(events)))
        self._wake.set()
        return await future

    async def _linger(self) -> None:
        """Saturated (the last group was large): waits while calls keep arriving, a step at a
        time and at most `linger_max_s`, so there are fewer, larger commits; per call, a commit's
        fixed cost is what limits throughput then. A burst that stops arriving ends the wait
        after one step; under light load there is no wait at all."""
        deadline = time.monotonic() + self._linger_max_s
        while len(self._pending) < self._max_group_calls and time.monotonic() < deadline:
            before = len(self._pending)
            await asyncio.sleep(self._linger_step_s)
            if len(self._pending) == before:
                return

    def _take_group(self) -> list[_Call]:
        total = count = 0
        for call in self._pending:
            if count and (count >= self._max_group_calls or total + call.size > self._max_group_events):
                break
            total += call.size
            count += 1
        group = self._pending[:count]
        del self._pending[:count]
        return group

    async def _run_lane(self) -> None:
        """One lane: while a group commits, the next one gathers. One lane is enough — a group
        is one round trip — and keeps groups large."""
        conn: Conn | None = None
        try:
            while True:
                while not self._pending:
                    self._wake.clear()
                    await self._wake.wait()
                if self._last_group >= self._linger_after:
                    await self._linger()
                group = self._take_group()
                self._last_group = len(group)
                self.groups += 1
                self.calls += len(group)
                try:
                    if conn is None or conn.closed:
                        conn = await pg.connect(self._url)
                    await self._commit_group(conn, group)
                except asyncio.CancelledError:
                    for call in group:
                        if not call.future.done():
                            call.future.set_exception(_shutting_down())
                    raise
                except Exception as exc:
                    if conn is not None and not pg.usable(conn):
                        await conn.close()
                        conn = None
                    for call in group:
                        if not call.future.done():
                            call.future.set_exception(exc)
        finally:
            if conn is not None:
                await conn.close()

    async def _commit_group(self, conn: Conn, group: list[_Call]) -> None:
        # Our own commit's NOTIFY can reach this process before the commit's reply does; a feed
        # that knows a local commit is landing waits for its events instead of reading them.
        watched = [task_id for task_id in {call.task_id for call in group} if self._sink.watching(task_id)]
        marked = self._sink.committing(watched)
        try:
            await self._commit_group_of(conn, group)
        finally:
            self._sink.settled(marked)

    async def _commit_group_of(self, conn: Conn, group: list[_Call]) -> None:
        fast, slow = self._split(group)
        if fast:
            try:
                slow += await self._commit_fast(conn, fast)
            except psycopg.Error:
                if not pg.usable(conn):
                    raise
                for call in fast:
                    self._states.pop(call.task_id, None)
                slow += fast
        if slow:
            await self._commit_slow_isolated(conn, slow)

    def _split(self, group: list[_Call]) -> tuple[list[_Call], list[_Call]]:
        """Calls whose tasks' cached states admit them go the fast path; the rest (unknown
        task, a refusal to confirm under lock, a client key repeated in the group) go slow.
        All calls of one task take the same path, in arrival order."""
        by_task: dict[str, list[_Call]] = {}
        for call in group:
            by_task.setdefault(call.task_id, []).append(call)
        fast: list[_Call] = []
        slow: list[_Call] = []
        for task_id, calls in by_task.items():
            state = self._states.get(task_id)
            (fast if state is not None and _admits(state, calls) else slow).extend(calls)
        return fast, slow

    async def _commit_fast(self, conn: Conn, calls: list[_Call]) -> list[_Call]:
        """One statement for the whole group; returns the calls whose task's guard failed."""
        tasks: dict[str, dict[str, Any]] = {}
        rows: list[dict[str, Any]] = []
        offsets: list[list[int]] = []
        for call in calls:
            guard = tasks.get(call.task_id)
            if guard is None:
                state = self._states[call.task_id]
                self._states.move_to_end(call.task_id)
                guard = tasks[call.task_id] = {"id": call.task_id, "n": 0, "version": state.version, "worker": False}
            if call.actor.is_worker:
                guard["worker"] = True
            mine = []
            for event in call.events:
                guard["n"] += 1
                mine.append(guard["n"])
                rows.append(_row(call.task_id, guard["n"], event))
                if event.client_key is not None:
                    guard.setdefault("keys", []).append(event.client_key)
            offsets.append(mine)
        cursor = await conn.execute(_FAST, (_json(list(tasks.values())), _json(rows)))
        advanced = {task_id: (base, now) for task_id, base, now in await cursor.fetchall()}
        missed: list[_Call] = []
        committed: dict[str, list[tuple[_Call, list[Receipt]]]] = {}
        for call, mine in zip(calls, offsets, strict=True):
            done = advanced.get(call.task_id)
            if done is None:
                self._states.pop(call.task_id, None)
                missed.append(call)
                continue
            base, now = done
            receipts = [Receipt(base + i, now, e.client_key) for i, e in zip(mine, call.events, strict=True)]
            committed.setdefault(call.task_id, []).append((call, receipts))
            call.future.set_result(receipts)
        for task_id, results in committed.items():
            if self._sink.watching(task_id):
                stored = [_stored(task_id, e, r) for c, rs in results for e, r in zip(c.events, rs, strict=True)]
                self._sink.publish(task_id, stored)
        return missed

    async def _commit_slow_isolated(self, conn: Conn, group: list[_Call]) -> None:
        try:
            plan = await self._commit_slow(conn, group)
        except psycopg.Error as exc:
            if len(group) == 1 or not pg.usable(conn):
                raise
            fields = {"error": type(exc).__name__, "calls": len(group)}
            log.warning("group commit failed; retrying its calls one by one", extra={"fields": fields})
            for call in group:
                try:
                    await self._commit_slow_isolated(conn, [call])
                except psycopg.Error as single:
                    if not pg.usable(conn):
                        raise
                    call.future.set_exception(single)
            return
        for call, outcome in plan.results:
            if call.future.done():
                continue
            if isinstance(outcome, NexusError):
                call.future.set_exception(outcome)
            else:
                call.future.set_result(outcome)

    async def _commit_slow(self, conn: Conn, group: list[_Call]) -> _Plan:
        task_ids = sorted({call.task_id for call in group})
        key_tasks: list[str] = []
        key_names: list[str] = []
        for call in group:
            for event in call.events:
                if event.client_key is not None:
                    key_tasks.append(call.task_id)
                    key_names.append(event.client_key)
        plan = _Plan()
        try:
            async with conn.pipeline() as pipeline:
                await conn.execute(b"BEGIN")
                locked = await conn.execute(_LOCK, (task_ids,))
                known = await conn.execute(_KEYS, (key_tasks, key_names)) if key_tasks else None
                await pipeline.sync()
                rows = {row[0]: row for row in await locked.fetchall()}
                existing: dict[tuple[str, str], Receipt] = {}
                if known is not None:
                    for task_id, key, seq, created in await known.fetchall():
                        existing[(task_id, key)] = Receipt(seq, created, key)
                self._plan(group, rows, existing, plan)
                if plan.rows:
                    tails = list(plan.tails)
                    await conn.execute(
                        _WRITE,
                        (_json(plan.rows), tails, [plan.tails[t] for t in tails], notify_payload(plan.tails)),
                    )
                await conn.execute(b"COMMIT")
        except BaseException:
            await pg.rollback(conn)
            raise
        for row in rows.values():
            self._remember(row[0], _State(row[1], row[2], row[4], row[5], row[8]))
        if plan.rows:
            self._publish(group, rows, plan)
        return plan

    def _remember(self, task_id: str, state: _State) -> None:
        self._states[task_id] = state
        self._states.move_to_end(task_id)
        if len(self._states) > STATE_CACHE_SIZE:
            self._states.popitem(last=False)

    def _plan(
        self,
        group: list[_Call],
        rows: dict[str, tuple[Any, ...]],
        existing: dict[tuple[str, str], Receipt],
        plan: _Plan,
    ) -> None:
        """Checks each call against its locked task and lays out the rows to write."""
        for call in group:
            row = rows.get(call.task_id)
            try:
                require_visible(call.actor, row[1] if row else None)
                assert row is not None
                require_writable(call.actor, leases.LeaseState(row[2], row[4], row[5], row[6]))
            except NexusError as refused:
                plan.results.append((call, refused))
                continue
            now: datetime = row[7]
            tail = plan.tails.get(call.task_id, row[3])
            receipts: list[Receipt] = []
            for event in call.events:
                key = event.client_key
                if key is not None:
                    first = existing.get((call.task_id, key))
                    if first is not None:
                        receipts.append(first)
                        continue
                tail += 1
                receipt = Receipt(tail, now, key)
                if key is not None:
                    existing[(call.task_id, key)] = receipt
                receipts.append(receipt)
                plan.rows.append(_row(call.task_id, tail, event))
            if tail != row[3]:
                plan.tails[call.task_id] = tail
            plan.results.append((call, receipts))

    def _publish(self, group: list[_Call], rows: dict[str, tuple[Any, ...]], plan: _Plan) -> None:
        """Hands committed events to local subscribers, so they need no read for them."""
        by_task: dict[str, list[Event]] = {}
        for call, outcome in plan.results:
            if isinstance(outcome, NexusError) or not self._sink.watching(call.task_id):
                continue
            events = by_task.setdefault(call.task_id, [])
            before = rows[call.task_id][3]
            for event, receipt in zip(call.events, outcome, strict=True):
                if receipt.seq <= before or (events and receipt.seq <= events[-1].seq):
                    continue  # a duplicate key, answered with the first receipt
                events.append(_stored(call.task_id, event, receipt))
        for task_id, events in by_task.items():
            if events:
                self._sink.publish(task_id, events)

    # -- reads --------------------------------------------------------------------------------

    async def read(self, task_id: str, after_seq: int, limit: int, before_seq: int = 0) -> list[Event]:
        async with self._reads.borrow() as conn:
            cursor = await conn.execute(_READ, (task_id, after_seq, before_seq or _NO_UPPER, limit))
            rows = await cursor.fetchall()
        return [Event(task_id, *row) for row in rows]

    async def tail(self, task_id: str) -> tuple[str, str, int] | None:
        """(owner, status, last_seq) of a task, or None."""
        async with self._reads.borrow() as conn:
            cursor = await conn.execute(_TAIL, (task_id,))
            row = await cursor.fetchone()
        return None if row is None else (str(row[0]), str(row[1]), int(row[2]))


def _admits(state: _State, calls: list[_Call]) -> bool:
    """Whether the domain rules admit every call against the cached state. A refusal is never
    final here: it is confirmed (or not) under the row lock on the slow path."""
    keys: set[str] = set()
    for call in calls:
        try:
            require_visible(call.actor, state.owner)
            require_writable(call.actor, leases.LeaseState(state.status, state.lease_id, state.holder, True))
        except NexusError:
            return False
        for event in call.events:
            if event.client_key is not None:
                if event.client_key in keys:
                    return False
                keys.add(event.client_key)
    return True


def _stored(task_id: str, event: NewEvent, receipt: Receipt) -> Event:
    return Event(
        task_id=task_id,
        seq=receipt.seq,
        role=event.role,
        type=event.type,
        content_text=event.content_text,
        render_payload=event.render_payload,
        metadata=event.metadata,
        client_key=event.client_key,
        created_at=receipt.created_at,
    )
