"""The one writer of event rows, and the one format of the notification that announces them.

Every event a task gets (appends through the commit lane, status events of transitions, plan
events, a new task's first events) is written by `write`: one statement that, for every task of
a `Batch`,

1. **locks** the task rows, `ORDER BY id FOR NO KEY UPDATE`, before anything else touches them.
   Every statement in the runtime that locks several task rows takes them in this one order, so
   transactions that lock task rows cannot deadlock each other, on one replica or across many.
   (An `UPDATE … FROM` locks rows in whatever order its plan probes them; the locking CTE fixes
   the order.) `NO KEY UPDATE` is what the update needs: it does not wait for the `KEY SHARE`
   locks that inserts into the workspace tables take on the task row through their foreign keys.
2. **allocates seqs**: advances `last_seq` by the task's number of events (only where a guard
   still holds, for the lane's fast path: the task's `state_version` is the one the lane checked,
   a worker's lease is live, none of the client keys exists);
3. **stamps** the events with `clock_timestamp()` taken as the row is advanced, so after its lock
   is held: a later seq never has an earlier create_time (`now()` is when the transaction began,
   which may be long before a lock wait ends);
4. **inserts** the events at the seqs it allocated;
5. **notifies** once: `task:last_seq` for every task it advanced, comma-separated; a payload over
   Postgres' limit is `*` instead (re-read every watched task). `parse_hints` reads it.

Seqs therefore stay gapless and in commit order: the row lock is held to commit, and a rolled
back transaction takes its counter back with it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import class_row

from services.runtime.domain.events import NewEvent
from services.runtime.store.tables import NOTIFY_CHANNEL

# Postgres caps a payload below 8000 bytes.
MAX_NOTIFY_PAYLOAD = 7900
NOTIFY_EVERYTHING = "*"

_TASKS = "json_to_recordset(%(tasks)s::json) AS v(id uuid, n int8, state_version int4, worker bool, keys text[])"
_EVENTS = "json_to_recordset(%(events)s::json) AS e(t uuid, s int8, r text, y text, c text, p jsonb, m jsonb, k text)"
_ADVANCE = (
    f"WITH v AS (SELECT * FROM {_TASKS}),"
    " locked AS MATERIALIZED ("
    "  SELECT id FROM runtime.task WHERE id = ANY (%(ids)s::uuid[]) ORDER BY id FOR NO KEY UPDATE"
    " ), adv AS ("
    "  UPDATE runtime.task AS t"
    "  SET last_seq = t.last_seq + v.n, last_active_at = clock_timestamp(), updated_at = clock_timestamp()"
    "  FROM locked JOIN v ON v.id = locked.id"
    "  WHERE t.id = locked.id AND (v.state_version IS NULL OR t.state_version = v.state_version)"
    "  AND (NOT v.worker OR t.lease_expires_at > clock_timestamp())"
    "  AND (v.keys IS NULL OR NOT EXISTS ("
    "   SELECT 1 FROM runtime.task_event AS x WHERE x.task_id = t.id AND x.client_key = ANY (v.keys)))"
    "  RETURNING t.id, t.last_seq - v.n AS base, t.last_seq AS tail, t.last_active_at AS at"
    " ), ins AS ("
    "  INSERT INTO runtime.task_event"
    "  (task_id, seq, role, type, content_text, render_payload, metadata, client_key, created_at)"
    f"  SELECT e.t, adv.base + e.s, e.r, e.y, e.c, e.p, e.m, e.k, adv.at FROM {_EVENTS} JOIN adv ON adv.id = e.t"
    " )"
)
_NOTIFY = (
    ", note AS ("
    f"  SELECT pg_notify('{NOTIFY_CHANNEL}',"
    f"   CASE WHEN length(hints) <= {MAX_NOTIFY_PAYLOAD} THEN hints ELSE '{NOTIFY_EVERYTHING}' END)"
    "  FROM (SELECT string_agg(adv.id::text || ':' || adv.tail, ',') AS hints FROM adv) AS h"
    "  WHERE hints IS NOT NULL"
    " )"
)
_RESULT = " SELECT adv.id::text AS task_id, adv.base, adv.at FROM adv"
_WRITE = _ADVANCE + _NOTIFY + _RESULT + ", note"
# A new task's first events: nobody can watch a task before its creation commits.
_WRITE_QUIETLY = _ADVANCE + _RESULT


@dataclass(frozen=True, slots=True)
class Advanced:
    """A task the write advanced: its events are at `base + 1 …`, stamped `at`."""

    task_id: str
    base: int
    at: datetime


@dataclass(slots=True)
class Batch:
    """One write's tasks and events, laid out as the statement reads them."""

    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)

    def add(
        self, task_id: str, events: Sequence[NewEvent], *, if_state_version: int | None = None, worker: bool = False
    ) -> list[int]:
        """Adds `events` after the task's earlier events in this batch; returns their offsets
        (the first event of the task in the batch is 1). With `if_state_version`, the task is advanced
        only if its `state_version` is still that, a worker's lease is live and none of the
        events' client keys exists; without it the caller holds the row lock and has checked."""
        guard = self.tasks.get(task_id)
        if guard is None:
            guard = self.tasks[task_id] = {"id": task_id, "n": 0, "state_version": if_state_version, "worker": worker}
        elif worker:
            guard["worker"] = True
        offsets = []
        for event in events:
            guard["n"] += 1
            offsets.append(guard["n"])
            self.rows.append(
                {
                    "t": task_id,
                    "s": guard["n"],
                    "r": event.role,
                    "y": event.type,
                    "c": event.content_text,
                    "p": event.render_payload,
                    "m": event.metadata,
                    "k": event.client_key,
                }
            )
            if event.client_key is not None and if_state_version is not None:
                guard.setdefault("keys", []).append(event.client_key)
        return offsets


class Written:
    """A write sent (perhaps in a pipeline, not yet synced); `advanced()` reads its outcome."""

    def __init__(self, cursor: psycopg.AsyncCursor[Advanced]) -> None:
        self._cursor = cursor

    async def advanced(self) -> dict[str, Advanced]:
        return {row.task_id: row for row in await self._cursor.fetchall()}


async def write(conn: psycopg.AsyncConnection[Any], batch: Batch, *, notify: bool = True) -> Written:
    """Sends the batch's write on `conn` (in its transaction, if one is open)."""
    cursor = conn.cursor(row_factory=class_row(Advanced))
    await cursor.execute(
        _WRITE if notify else _WRITE_QUIETLY,
        {"ids": list(batch.tasks), "tasks": _json(list(batch.tasks.values())), "events": _json(batch.rows)},
    )
    return Written(cursor)


def parse_hints(payload: str) -> list[tuple[str, int]] | None:
    """The (task, last_seq) pairs a notification names; None for NOTIFY_EVERYTHING."""
    if payload == NOTIFY_EVERYTHING:
        return None
    hints = []
    for part in payload.split(","):
        task_id, _, seq = part.partition(":")
        if task_id and seq.isdigit():
            hints.append((task_id, int(seq)))
    return hints


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
