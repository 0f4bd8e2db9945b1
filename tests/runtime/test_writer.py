"""The one writer of event rows: seqs from the task row, one notification naming every task it
advanced with its new tail, and nothing at all when a guard no longer holds."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg

from nexus.kit.config import Settings
from nexus.kit.postgres import service_url
from services.runtime.domain.events import NewEvent
from services.runtime.store import writer
from services.runtime.store.tables import NOTIFY_CHANNEL
from tests.runtime.conftest import Metadata, all_events, create_task


def note(text: str) -> NewEvent:
    return NewEvent(role="user", type="message", content_text=text, render_payload=None, metadata={})


async def test_one_write_notifies_once_naming_each_task_with_its_new_tail(
    stub: Any, owner: tuple[str, Metadata], agent: str, settings: Settings
) -> None:
    _, user = owner
    first, second = [(await create_task(stub, user, agent)).task_id for _ in range(2)]
    url = service_url(settings, "runtime", driver="postgresql")
    async with (
        await psycopg.AsyncConnection.connect(url, autocommit=True) as listening,
        await psycopg.AsyncConnection.connect(url, autocommit=True) as conn,
    ):
        await listening.execute(f"LISTEN {NOTIFY_CHANNEL}")
        batch = writer.Batch()
        assert batch.add(first, [note("a"), note("b")]) == [1, 2]
        assert batch.add(second, [note("c")]) == [1]
        assert batch.add(first, [note("d")]) == [3]
        advanced = await (await writer.write(conn, batch)).advanced()
        assert {t: a.base for t, a in advanced.items()} == {first: 1, second: 1}
        ours = {first, second}

        async def our_notification() -> list[tuple[str, int]] | None:
            async for received in listening.notifies():
                hints = writer.parse_hints(received.payload)
                if hints is None or ours & {task_id for task_id, _ in hints}:
                    return hints
            return None

        hints = await asyncio.wait_for(our_notification(), 10)
        assert hints is not None and sorted(hints) == sorted([(first, 4), (second, 2)])
    events = await all_events(stub, user, first)
    assert [e.seq for e in events] == [1, 2, 3, 4]
    assert [e.content_text for e in events[1:]] == ["a", "b", "d"]
    assert len({e.create_time.ToNanoseconds() for e in events[1:]}) == 1  # one write, one time


async def test_a_guarded_write_whose_state_moved_on_writes_and_notifies_nothing(
    stub: Any, owner: tuple[str, Metadata], agent: str, settings: Settings
) -> None:
    _, user = owner
    task = (await create_task(stub, user, agent)).task_id
    url = service_url(settings, "runtime", driver="postgresql")
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        batch = writer.Batch()
        batch.add(task, [note("stale")], if_state_version=999)
        assert await (await writer.write(conn, batch)).advanced() == {}
    assert [e.seq for e in await all_events(stub, user, task)] == [1]
