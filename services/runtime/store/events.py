"""The event log's hot path: group commit of appends, and event reads.

Group commit: every AppendTaskEvents call enqueues its events and awaits a future. A few commit
lanes, each with its own connection, take everything queued so far and commit it in one
transaction of two round trips (pipeline mode):

1. `BEGIN`; lock the group's task rows in id order (`FOR UPDATE`: no deadlock between lanes);
   look up the client keys the group carries.
2. One multi-row INSERT of every new event, one UPDATE of every task's `last_seq`, one
   `pg_notify` naming every task and its new tail, `COMMIT`.

The task row lock is what orders a task's events: a transaction allocates seqs from `last_seq`
only while holding it, and holds it until commit, so seq order is commit order and a rolled-back
append leaves no gap. Client keys are checked after the lock is taken, so a concurrent retry
waits for the first attempt and then finds its key (READ COMMITTED: each statement sees what
committed before it began). The unique index on (task_id, client_key) is only a backstop.

Each call in a group is checked on its own (visibility, task ended, lease); a call that fails a
check fails alone. If the database rejects a whole group, its calls are retried one by one, so
only the offending call fails.
"""

from __future__ import annotations

import asyncio
import json
import logging
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
from services.runtime.store.tasks import notify_payload

log = logging.getLogger("nexus.runtime.events")

Conn = psycopg.AsyncConnection[tuple[Any, ...]]

_LOCK = (
    "SELECT id::text, user_id, status, last_seq, lease_id::text, lease_holder,"
    " coalesce(lease_expires_at > now(), false), now()"
    " FROM runtime.task WHERE id = ANY(%s::uuid[]) ORDER BY id FOR UPDATE"
)
_KEYS = (
    "SELECT e.task_id::text, e.client_key, e.seq, e.created_at FROM runtime.task_event e"
    " JOIN unnest(%s::uuid[], %s::text[]) AS k(task_id, client_key)"
    " ON e.task_id = k.task_id AND e.client_key = k.client_key"
)
# One statement writes the group: its events (from one JSON document, cheaper to send than eight
# arrays), every task's new tail, and the single notification.
_WRITE = (
    "WITH ins AS ("
    " INSERT INTO runtime.task_event"
    " (task_id, seq, role, type, content_text, render_payload, metadata, client_key)"
    " SELECT t, s, r, y, c, p, m, k FROM json_to_recordset(%s::json)"
    " AS e(t uuid, s int8, r text, y text, c text, p jsonb, m jsonb, k text)"
    "), adv AS ("
    " UPDATE runtime.task AS t SET last_seq = v.last_seq, last_active_at = now(), updated_at = now()"
    " FROM unnest(%s::uuid[], %s::int8[]) AS v(id, last_seq) WHERE t.id = v.id"
    f") SELECT pg_notify('{NOTIFY_CHANNEL}', %s)"
)
_READ = (
    "SELECT seq, role, type, content_text, render_payload, metadata, client_key, created_at"
    " FROM runtime.task_event WHERE task_id = %s AND seq > %s AND seq < %s ORDER BY seq LIMIT %s"
)
_TAIL = "SELECT user_id, status, last_seq FROM runtime.task WHERE id = %s"

GATHER_S = float(__import__("os").environ.get("GATHER_S", "0.001"))
_NO_UPPER = 2**62


class Sink(Protocol):
    """Where committed events go in this process: the stream hub."""

    def watching(self, task_id: str) -> bool: ...

    def publish(self, task_id: str, events: list[Event]) -> None: ...


def _shutting_down() -> Unavailable:
    return Unavailable("the server is shutting down; retry", reason="SHUTTING_DOWN")


class _Nowhere:
    def watching(self, task_id: str) -> bool:
        return False

    def publish(self, task_id: str, events: list[Event]) -> None:
        return None


@dataclass(slots=True)
class _Call:
    actor: Actor
    task_id: str
    events: Sequence[NewEvent]
    future: asyncio.Future[list[Receipt]]
    size: int = 0


@dataclass(slots=True)
class _Plan:
    """What one group transaction writes."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    tails: dict[str, int] = field(default_factory=dict)
    results: list[tuple[_Call, list[Receipt] | NexusError]] = field(default_factory=list)


class EventLog:
    def __init__(self, url: str, *, lanes: int = 1, readers: int = 4, max_group_events: int = 4000) -> None:
        self._url = url
        self._sink: Sink = _Nowhere()
        self._lanes = lanes
        self._max_group_events = max_group_events
        self._max_group_calls = 256
        self._last_group = 0
        self._pending: list[_Call] = []
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._reads = pg.Connections(url, readers)
        self._closing = False

    def attach(self, sink: Sink) -> None:
        self._sink = sink

    async def start(self) -> None:
        for lane in range(self._lanes):
            self._tasks.append(asyncio.create_task(self._run_lane(), name=f"runtime-commit-{lane}"))

    async def stop(self) -> None:
        self._closing = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
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

    async def _gather(self) -> None:
        """Lets calls that already reached the process join the group: yields to the event loop
        while each turn brings more calls, for at most GATHER_TURNS turns. Idle, this costs one
        turn; saturated, it turns many small commits into a few large ones."""
        if GATHER_S and self._last_group > 1:
            await asyncio.sleep(GATHER_S)

    def _take_group(self) -> list[_Call]:
        total = 0
        count = 0
        for call in self._pending:
            if count and (total + call.size > self._max_group_events or count >= self._max_group_calls):
                break
            total += call.size
            count += 1
        group = self._pending[:count]
        del self._pending[:count]
        return group

    async def _run_lane(self) -> None:
        conn: Conn | None = None
        try:
            while True:
                while not self._pending:
                    self._wake.clear()
                    await self._wake.wait()
                await self._gather()
                group = self._take_group()
                self._last_group = len(group)
                _STATS.append(len(group))
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
        try:
            plan = await self._commit(conn, group)
        except psycopg.Error as exc:
            if len(group) == 1 or not pg.usable(conn):
                raise
            log.warning(
                "group commit failed; retrying its calls one by one", extra={"fields": {"error": type(exc).__name__}}
            )
            for call in group:
                try:
                    await self._commit_group(conn, [call])
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

    async def _commit(self, conn: Conn, group: list[_Call]) -> _Plan:
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
                    document = json.dumps(plan.rows, ensure_ascii=False, separators=(",", ":"))
                    tails = list(plan.tails)
                    await conn.execute(
                        _WRITE, (document, tails, [plan.tails[t] for t in tails], notify_payload(plan.tails))
                    )
                await conn.execute(b"COMMIT")
        except BaseException:
            await pg.rollback(conn)
            raise
        if plan.rows:
            self._publish(group, rows, plan)
        return plan

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
                plan.rows.append(
                    {
                        "t": call.task_id,
                        "s": tail,
                        "r": event.role,
                        "y": event.type,
                        "c": event.content_text,
                        "p": event.render_payload,
                        "m": event.metadata,
                        "k": key,
                    }
                )
            if tail != row[3]:
                plan.tails[call.task_id] = tail
            plan.results.append((call, receipts))

    def _publish(self, group: list[_Call], rows: dict[str, tuple[Any, ...]], plan: _Plan) -> None:
        """Hands committed events to local subscribers, so they need no read for them."""
        sink = self._sink
        by_task: dict[str, list[Event]] = {}
        for call, outcome in plan.results:
            if isinstance(outcome, NexusError) or not sink.watching(call.task_id):
                continue
            events = by_task.setdefault(call.task_id, [])
            before = rows[call.task_id][3]
            for event, receipt in zip(call.events, outcome, strict=True):
                if receipt.seq <= before or (events and receipt.seq <= events[-1].seq):
                    continue  # a duplicate key, answered with the first receipt
                events.append(
                    Event(
                        task_id=call.task_id,
                        seq=receipt.seq,
                        role=event.role,
                        type=event.type,
                        content_text=event.content_text,
                        render_payload=event.render_payload,
                        metadata=event.metadata,
                        client_key=event.client_key,
                        created_at=receipt.created_at,
                    )
                )
        for task_id, events in by_task.items():
            if events:
                sink.publish(task_id, events)

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


_STATS: list[int] = []
import atexit  # noqa: E402


@atexit.register
def _dump_stats() -> None:
    if _STATS:
        import sys

        print(f"groups={len(_STATS)} mean={sum(_STATS) / len(_STATS):.1f} max={max(_STATS)}", file=sys.stderr)
