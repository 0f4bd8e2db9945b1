"""The event log's hot path: group commit of appends, and event reads.

**Group commit.** Every AppendTaskEvents call enqueues its events and awaits a future. A commit
lane (its own connection) takes every call queued so far and commits the whole group at once, so
one database round trip serves many calls. Under saturation the lane lingers while calls keep
arriving (up to 10 ms), so groups grow and a commit's fixed cost is shared by more calls. Each
call is checked on its own (visibility, task ended, lease) with the domain rules; a call that
fails a check fails alone.

**Ordering.** Rows are written by `writer` (the one writer of event rows): seqs are allocated by
the statement that advances the task row's `last_seq`, under the row lock, held to commit. So a
task's appends serialize on its row, seq order is commit order, and a rolled-back append leaves
no gap. Task rows are always locked in id order, so lanes of several replicas cannot deadlock.

**Fast path: one statement, one round trip.** The lane keeps each task's append-relevant state
(owner, status, lease, `state_version`) from an earlier locked read. The domain rules are checked
against it in Python; then one autocommit write, for every task of the group, advances
`last_seq` only where `state_version` is unchanged (every status change bumps it) and, for a
worker, the lease has not expired; inserts the events; and sends one notification. A task whose
guard fails (its state changed, or one of its client keys already exists) is simply not
advanced, and its calls take the slow path.

**Slow path: lock, then decide.** `BEGIN`; lock the tasks' rows (`FOR NO KEY UPDATE`, in id
order) and look up the client keys; decide each call against the locked state; write; `COMMIT`.
Two round trips, pipelined. Client keys are read after the lock is taken, so a concurrent retry
waits for the first attempt and then finds its key (READ COMMITTED: each statement sees what
committed before it began); a known key answers its first receipt and writes nothing. The
unique index on (task_id, client_key) is the backstop: if a race slips past the fast path's key
guard, the statement fails and its calls are retried on the slow path.

**A locked task steps aside.** The lane's statements wait at most `lane_lock_wait_s` for a row
lock (`lock_timeout`). When one gives up, the group is retried on the slow path with `SKIP
LOCKED`: every task whose row is free commits at once, and the calls of a task whose row another
transaction holds step aside. Off the lane, on a read connection, they wait for that lock (in
rounds of `ASIDE_LOCK_WAIT_S`, so no connection is held for ever) and commit as soon as it is
released. Calls for that task that arrive meanwhile join them in arrival order, and go back to
the lane, first in line, once the waiting calls have committed. A blocked call thus succeeds
once the lock goes; how long it may wait is its caller's deadline. The other calls of the group
that met the lock waited `lane_lock_wait_s` once; later groups do not wait for that task.

If the database rejects a whole group for another reason, its calls are retried one by one, so
only the offending call fails. Deadlocks (which the lock order rules out) and lock timeouts are
logged and counted (`deadlocks`, `lock_timeouts`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

import psycopg
from psycopg import errors as pg_errors
from psycopg.rows import class_row

from nexus.kit.errors import NexusError, Unavailable
from services.runtime.domain import leases
from services.runtime.domain.events import Event, NewEvent, Receipt
from services.runtime.domain.tasks import Actor, require_visible, require_writable
from services.runtime.store import pg, writer

log = logging.getLogger("nexus.runtime.events")

Conn = psycopg.AsyncConnection[Any]


@dataclass(frozen=True, slots=True)
class _Locked:
    """A task row as the slow path reads it under its lock."""

    id: str
    user_id: str
    status: str
    last_seq: int
    lease_id: str | None
    lease_holder: str | None
    lease_live: bool
    state_version: int


@dataclass(frozen=True, slots=True)
class _Key:
    task_id: str
    client_key: str
    seq: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class _Tail:
    user_id: str
    status: str
    last_seq: int


_LOCKED_COLUMNS = (
    "SELECT id::text AS id, user_id, status, last_seq, lease_id::text AS lease_id, lease_holder,"
    " coalesce(lease_expires_at > clock_timestamp(), false) AS lease_live, state_version"
    " FROM runtime.task WHERE id = ANY(%s::uuid[]) ORDER BY id"
)
_LOCK = _LOCKED_COLUMNS + " FOR NO KEY UPDATE"
# Takes the rows that are free now; a row another transaction holds is left out.
_LOCK_SKIP = _LOCKED_COLUMNS + " FOR NO KEY UPDATE SKIP LOCKED"
_KEYS = (
    "SELECT e.task_id::text AS task_id, e.client_key, e.seq, e.created_at FROM runtime.task_event e"
    " JOIN unnest(%s::uuid[], %s::text[]) AS k(task_id, client_key)"
    " ON e.task_id = k.task_id AND e.client_key = k.client_key"
)
_READ = (
    "SELECT task_id::text AS task_id, seq, role, type, content_text, render_payload, metadata, client_key, created_at"
    " FROM runtime.task_event WHERE task_id = %s AND seq > %s AND seq < %s ORDER BY seq LIMIT %s"
)
_TAIL = "SELECT user_id, status, last_seq FROM runtime.task WHERE id = %s"

_NO_UPPER = 2**62
# States remembered for the fast path; the least recently appended-to are forgotten first.
STATE_CACHE_SIZE = 100_000
# How long the lane's statements wait for a row lock before the locked task's calls step aside.
# Appends and transitions hold a task's row for milliseconds; this is far above that, and low
# enough that a stuck row costs the other calls of its group one short pause.
LANE_LOCK_WAIT_S = 0.2
# A stepped-aside task's commit waits this long for its row, then lets its connection go and
# waits again; at most ASIDE_SLOTS such waits hold read connections at once.
ASIDE_LOCK_WAIT_S = 1.0
ASIDE_SLOTS = 2
DEADLOCK = "40P01"
LOCK_NOT_AVAILABLE = "55P03"


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


def _answer(call: _Call, outcome: list[Receipt] | BaseException) -> None:
    """Resolves a call unless its caller has gone (a cancelled call's future is done)."""
    if call.future.done():
        return
    if isinstance(outcome, BaseException):
        call.future.set_exception(outcome)
    else:
        call.future.set_result(outcome)


@dataclass(frozen=True, slots=True)
class _State:
    """What decides whether a task takes appends, as last read under its row lock."""

    owner: str
    status: str
    lease_id: str | None
    holder: str | None
    state_version: int


# How a group commits: on the lane; on the lane, skipping rows held elsewhere; or stepped aside.
_Mode = Literal["lane", "skip", "aside"]

# Per event of a slow-path call: its first receipt (a known client key), or its offset among
# the task's events in this write (the receipt is known once the write has run).
_Outcome = list[Receipt | int]


@dataclass(slots=True)
class _Plan:
    """What one slow-path transaction writes and answers."""

    batch: writer.Batch = field(default_factory=writer.Batch)
    results: list[tuple[_Call, _Outcome | NexusError]] = field(default_factory=list)
    # Calls whose task's row was held by another transaction (SKIP LOCKED left it out).
    aside: list[_Call] = field(default_factory=list)


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
        lane_lock_wait_s: float = LANE_LOCK_WAIT_S,
    ) -> None:
        self._url = url
        self._sink: Sink = _Nowhere()
        self._max_group_calls = max_group_calls
        self._max_group_events = max_group_events
        self._linger_step_s = linger_step_s
        self._linger_max_s = linger_max_s
        self._linger_after = linger_after
        self._lane_lock_wait_s = lane_lock_wait_s
        self._pending: list[_Call] = []
        self._wake = asyncio.Event()
        self._lane: asyncio.Task[None] | None = None
        self._reads = pg.pool(url, readers, name="nexus-runtime-reads")
        self._reads_open = False
        self._states: OrderedDict[str, _State] = OrderedDict()
        # Tasks whose row another transaction holds: their calls, waiting off the lane.
        self._aside: dict[str, list[_Call]] = {}
        self._aside_waits: set[asyncio.Task[None]] = set()
        self._aside_slots = asyncio.Semaphore(ASIDE_SLOTS)
        self._closing = False
        self._last_group = 0
        self.groups = 0
        self.calls = 0
        self.deadlocks = 0
        self.lock_timeouts = 0
        self.stepped_aside = 0

    def attach(self, sink: Sink) -> None:
        self._sink = sink

    async def start(self) -> None:
        await self._open_reads()
        self._lane = asyncio.create_task(self._run_lane(), name="runtime-commit-lane")

    async def stop(self) -> None:
        fields: dict[str, object] = {
            "groups": self.groups,
            "calls": self.calls,
            "deadlocks": self.deadlocks,
            "lock_timeouts": self.lock_timeouts,
            "stepped_aside": self.stepped_aside,
        }
        if self._reads_open:
            fields["reads_pool"] = self._reads.get_stats()
        log.info("event log stopped", extra={"fields": fields})
        self._closing = True
        if self._lane is not None:
            self._lane.cancel()
            await asyncio.gather(self._lane, return_exceptions=True)
            self._lane = None
        for wait in list(self._aside_waits):
            wait.cancel()
        await asyncio.gather(*self._aside_waits, return_exceptions=True)
        for call in [*self._pending, *(c for calls in self._aside.values() for c in calls)]:
            _answer(call, _shutting_down())
        self._pending.clear()
        self._aside.clear()
        if self._reads_open:
            await self._reads.close()
            self._reads_open = False

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
        """The next group; calls for a task that stepped aside join its waiting calls instead."""
        group: list[_Call] = []
        total = taken = 0
        for call in self._pending:
            if group and (len(group) >= self._max_group_calls or total + call.size > self._max_group_events):
                break
            taken += 1
            waiting = self._aside.get(call.task_id)
            if waiting is not None:
                waiting.append(call)
                continue
            total += call.size
            group.append(call)
        del self._pending[:taken]
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
                if not group:
                    continue
                self.groups += 1
                self.calls += len(group)
                try:
                    if conn is None or conn.closed:
                        conn = await pg.connect(
                            self._url,
                            name="nexus-runtime-lane",
                            lock_timeout_s=self._lane_lock_wait_s,
                            keepalive_s=10,
                        )
                    await self._commit_group(conn, group, mode="lane")
                except asyncio.CancelledError:
                    for call in group:
                        _answer(call, _shutting_down())
                    raise
                except Exception as exc:
                    if conn is not None and not pg.usable(conn):
                        await conn.close()
                        conn = None
                    for call in group:
                        _answer(call, exc)
        finally:
            if conn is not None:
                await conn.close()

    async def _commit_group(self, conn: Conn, group: list[_Call], *, mode: _Mode) -> None:
        # Our own commit's NOTIFY can reach this process before the commit's reply does; a feed
        # that knows a local commit is landing waits for its events instead of reading them.
        watched = [task_id for task_id in {call.task_id for call in group} if self._sink.watching(task_id)]
        marked = self._sink.committing(watched)
        try:
            await self._commit_group_of(conn, group, mode=mode)
        finally:
            self._sink.settled(marked)

    async def _commit_group_of(self, conn: Conn, group: list[_Call], *, mode: _Mode) -> None:
        fast, slow = self._split(group) if mode == "lane" else ([], group)
        if fast:
            try:
                slow += await self._commit_fast(conn, fast)
            except psycopg.Error as exc:
                if not pg.usable(conn):
                    raise
                self._note_failure("fast", exc, len(fast))
                if exc.sqlstate == LOCK_NOT_AVAILABLE:
                    # A row is held elsewhere; the states are still right. Commit what is free.
                    mode = "skip"
                else:
                    for call in fast:
                        self._states.pop(call.task_id, None)
                slow += fast
        if slow:
            await self._commit_slow_isolated(conn, slow, mode=mode)

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
        batch = writer.Batch()
        offsets: list[list[int]] = []
        for call in calls:
            state = self._states[call.task_id]
            self._states.move_to_end(call.task_id)
            offsets.append(
                batch.add(call.task_id, call.events, if_state_version=state.state_version, worker=call.actor.is_worker)
            )
        advanced = await (await writer.write(conn, batch)).advanced()
        missed: list[_Call] = []
        committed: dict[str, list[Event]] = {}
        for call, mine in zip(calls, offsets, strict=True):
            done = advanced.get(call.task_id)
            if done is None:
                self._states.pop(call.task_id, None)
                missed.append(call)
                continue
            receipts = [Receipt(done.base + i, done.at, e.client_key) for i, e in zip(mine, call.events, strict=True)]
            if self._sink.watching(call.task_id):
                stored = committed.setdefault(call.task_id, [])
                stored += [_stored(call.task_id, e, r) for e, r in zip(call.events, receipts, strict=True)]
            _answer(call, receipts)
        for task_id, events in committed.items():
            self._sink.publish(task_id, events)
        return missed

    async def _commit_slow_isolated(self, conn: Conn, group: list[_Call], *, mode: _Mode) -> None:
        try:
            plan = await self._commit_slow(conn, group, mode=mode)
        except psycopg.Error as exc:
            if exc.sqlstate == LOCK_NOT_AVAILABLE or len(group) == 1 or not pg.usable(conn):
                raise
            self._note_failure("slow", exc, len(group))
            for call in group:
                try:
                    await self._commit_slow_isolated(conn, [call], mode=mode)
                except psycopg.Error as single:
                    if single.sqlstate == LOCK_NOT_AVAILABLE or not pg.usable(conn):
                        raise
                    _answer(call, single)
            return
        for call, outcome in plan.results:
            if isinstance(outcome, NexusError):
                _answer(call, outcome)
        self._step_aside(plan.aside)

    async def _commit_slow(self, conn: Conn, group: list[_Call], *, mode: _Mode) -> _Plan:
        """`lane`: wait for the rows (as long as the lane's lock_timeout allows), and if a wait
        times out, commit again with `skip`; `skip`: lock the rows that are free and step the
        calls of the others aside; `aside`: wait up to ASIDE_LOCK_WAIT_S, else raise."""
        if mode == "lane":
            try:
                return await self._commit_slow_once(conn, group, skip_locked=False, wait_s=None)
            except pg_errors.LockNotAvailable as exc:
                self._note_failure("slow", exc, len(group))
                mode = "skip"
        if mode == "skip":
            return await self._commit_slow_once(conn, group, skip_locked=True, wait_s=None)
        return await self._commit_slow_once(conn, group, skip_locked=False, wait_s=ASIDE_LOCK_WAIT_S)

    async def _commit_slow_once(
        self, conn: Conn, group: list[_Call], *, skip_locked: bool, wait_s: float | None
    ) -> _Plan:
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
                if wait_s is not None:
                    await conn.execute(b"SET LOCAL lock_timeout = %d" % max(1, round(wait_s * 1000)))
                locked = conn.cursor(row_factory=class_row(_Locked))
                await locked.execute(_LOCK_SKIP if skip_locked else _LOCK, (task_ids,))
                known = conn.cursor(row_factory=class_row(_Key))
                if key_tasks:
                    await known.execute(_KEYS, (key_tasks, key_names))
                await pipeline.sync()
                rows = {row.id: row for row in await locked.fetchall()}
                existing: dict[tuple[str, str], Receipt | int] = {}
                if key_tasks:
                    for key in await known.fetchall():
                        existing[(key.task_id, key.client_key)] = Receipt(key.seq, key.created_at, key.client_key)
                self._plan(group, rows, existing, plan, skipping=skip_locked)
                written = await writer.write(conn, plan.batch) if plan.batch.rows else None
                await conn.execute(b"COMMIT")
            advanced = await written.advanced() if written is not None else {}
        except BaseException:
            await pg.rollback(conn)
            raise
        for row in rows.values():
            self._remember(row.id, _State(row.user_id, row.status, row.lease_id, row.lease_holder, row.state_version))
        self._answer_plan(plan, advanced)
        return plan

    def _remember(self, task_id: str, state: _State) -> None:
        self._states[task_id] = state
        self._states.move_to_end(task_id)
        if len(self._states) > STATE_CACHE_SIZE:
            self._states.popitem(last=False)

    def _plan(
        self,
        group: list[_Call],
        rows: dict[str, _Locked],
        existing: dict[tuple[str, str], Receipt | int],
        plan: _Plan,
        *,
        skipping: bool,
    ) -> None:
        """Checks each call against its locked task and lays out the rows to write."""
        for call in group:
            row = rows.get(call.task_id)
            if row is None and skipping:
                # Held by another transaction (or gone: the wait off the lane will tell).
                plan.aside.append(call)
                continue
            try:
                require_visible(call.actor, row.user_id if row else None)
                assert row is not None
                lease = leases.LeaseState(row.status, row.lease_id, row.lease_holder, row.lease_live)
                require_writable(call.actor, lease)
            except NexusError as refused:
                plan.results.append((call, refused))
                continue
            outcome: _Outcome = []
            for event in call.events:
                key = event.client_key
                first = existing.get((call.task_id, key)) if key is not None else None
                if first is None:
                    (first,) = plan.batch.add(call.task_id, (event,))
                    if key is not None:
                        existing[(call.task_id, key)] = first
                outcome.append(first)
            plan.results.append((call, outcome))

    def _answer_plan(self, plan: _Plan, advanced: dict[str, writer.Advanced]) -> None:
        """Answers each call that committed, and hands the new events to local subscribers, so
        they need no read for them."""
        published: dict[str, list[Event]] = {}
        for call, outcome in plan.results:
            if isinstance(outcome, NexusError):
                continue
            done = advanced.get(call.task_id)
            new = published.setdefault(call.task_id, [])
            receipts: list[Receipt] = []
            for event, first in zip(call.events, outcome, strict=True):
                if isinstance(first, Receipt):
                    receipts.append(first)  # a key known before: its first receipt
                    continue
                assert done is not None
                receipt = Receipt(done.base + first, done.at, event.client_key)
                receipts.append(receipt)
                if not new or new[-1].seq < receipt.seq:  # else a key repeated in this group
                    new.append(_stored(call.task_id, event, receipt))
            _answer(call, receipts)
        for task_id, events in published.items():
            if events and self._sink.watching(task_id):
                self._sink.publish(task_id, events)

    def _note_failure(self, path: str, exc: psycopg.Error, calls: int) -> None:
        if exc.sqlstate == DEADLOCK:
            self.deadlocks += 1
        elif exc.sqlstate == LOCK_NOT_AVAILABLE:
            self.lock_timeouts += 1
        fields = {"path": path, "error": type(exc).__name__, "sqlstate": exc.sqlstate, "calls": calls}
        log.warning("group commit failed; its calls are retried", extra={"fields": fields})

    # -- calls whose task's row another transaction holds -------------------------------------

    def _step_aside(self, calls: list[_Call]) -> None:
        for call in calls:
            waiting = self._aside.get(call.task_id)
            if waiting is None:
                waiting = self._aside[call.task_id] = []
                wait = asyncio.create_task(self._wait_out(call.task_id, waiting), name="runtime-append-aside")
                self._aside_waits.add(wait)
                wait.add_done_callback(self._aside_waits.discard)
            waiting.append(call)
            self.stepped_aside += 1

    async def _wait_out(self, task_id: str, waiting: list[_Call]) -> None:
        """Commits a stepped-aside task's calls once its row is free; the calls that arrived
        meanwhile then go back to the lane, first in line."""
        calls: list[_Call] = []
        try:
            while True:
                calls = [call for call in waiting if not call.future.done()]
                waiting.clear()
                if not calls:
                    return
                try:
                    async with self._aside_slots, self._connection() as conn:
                        await self._commit_group(conn, calls, mode="aside")
                except pg_errors.LockNotAvailable:
                    waiting[:0] = calls  # still held: wait again, first in line
                    calls = []
                    continue
                except Exception as exc:
                    for call in calls:
                        _answer(call, exc)
                calls = []
                if waiting:
                    self._pending[:0] = waiting
                    self._wake.set()
                return
        except asyncio.CancelledError:
            for call in [*calls, *waiting]:
                _answer(call, _shutting_down())
            raise
        finally:
            if self._aside.get(task_id) is waiting:
                del self._aside[task_id]

    # -- reads --------------------------------------------------------------------------------

    async def _open_reads(self) -> None:
        if not self._reads_open:
            self._reads_open = True
            await self._reads.open()

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[Conn]:
        await self._open_reads()
        async with self._reads.connection() as conn:
            yield conn

    async def _fetch(self, query: str, params: Sequence[object], row_type: type[Any]) -> list[Any]:
        """Runs a read on a pooled connection. A connection that died while idle (the server
        restarted, a failover) fails its first use; the pool drops it, and the read is tried
        once more on another, instead of a check round trip before every read."""
        for attempt in (1, 2):
            async with self._connection() as conn:
                try:
                    cursor = conn.cursor(row_factory=class_row(row_type))
                    await cursor.execute(query, params)
                    return await cursor.fetchall()
                except psycopg.OperationalError:
                    if attempt == 2 or not pg.broken(conn):
                        raise
        raise AssertionError("unreachable")

    async def read(self, task_id: str, after_seq: int, limit: int, before_seq: int = 0) -> list[Event]:
        rows: list[Event] = await self._fetch(_READ, (task_id, after_seq, before_seq or _NO_UPPER, limit), Event)
        return rows

    async def tail(self, task_id: str) -> tuple[str, str, int] | None:
        """(owner, status, last_seq) of a task, or None."""
        rows: list[_Tail] = await self._fetch(_TAIL, (task_id,), _Tail)
        return (rows[0].user_id, rows[0].status, rows[0].last_seq) if rows else None


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
