"""A task whose row another transaction holds does not hold up appends to other tasks: its calls
step aside from the commit lane and commit once the lock goes."""

from __future__ import annotations

import asyncio
from typing import Any

from nexus.kit.config import Settings
from nexus.runtime.v1 import runtime_pb2
from tests.runtime.conftest import Metadata, all_events, append, create_task, message
from tests.runtime.locks import lock_waiters, row_locked
from tests.support import eventually


async def test_appends_to_other_tasks_finish_while_one_tasks_row_is_locked(
    stub: Any, owner: tuple[str, Metadata], agent: str, settings: Settings
) -> None:
    _, user = owner
    blocked = (await create_task(stub, user, agent)).task_id
    others = [(await create_task(stub, user, agent)).task_id for _ in range(20)]
    # The lane knows every task's state: the one-statement path, which once waited for any lock.
    await asyncio.gather(*[append(stub, user, t, message("warm")) for t in [blocked, *others]])
    async with row_locked(settings, blocked):
        first = asyncio.ensure_future(append(stub, user, blocked, message("first")))
        # Some arrive with it, in the same group; the rest once a call waits for the lock.
        together = [asyncio.ensure_future(append(stub, user, t, message("together"))) for t in others[:10]]

        async def waiting_or_done() -> bool:
            return await lock_waiters(settings) > 0 or all(c.done() for c in together)

        await eventually(waiting_or_done, "a call to wait for the locked row")
        after = [asyncio.ensure_future(append(stub, user, t, message("after"))) for t in others[10:]]
        second = asyncio.ensure_future(append(stub, user, blocked, message("second")))
        done, _ = await asyncio.wait([*together, *after], timeout=15)
        assert len(done) == 20, "appends to other tasks waited for another task's row lock"
        for call in [*together, *after]:
            assert [e.seq for e in call.result().events] == [3]
        assert not first.done() and not second.done()
    # Once the lock goes, the blocked calls commit, in order, and nothing was lost.
    replies = await asyncio.wait_for(asyncio.gather(first, second), 15)
    assert sorted(r.events[0].seq for r in replies) == [3, 4]
    stored = await all_events(stub, user, blocked)
    assert [e.seq for e in stored] == [1, 2, 3, 4]
    assert sorted(e.content_text for e in stored[2:]) == ["first", "second"]
    # The lane is healthy afterwards.
    assert [e.seq for e in (await append(stub, user, blocked, message("later"))).events] == [5]


async def test_a_call_that_gives_up_while_its_group_waits_leaves_the_others_intact(
    stub: Any, owner: tuple[str, Metadata], agent: str, settings: Settings
) -> None:
    """A client may cancel (or time out) while its call waits in the lane; the lane must still
    answer every other call of its group, never with INTERNAL."""
    _, user = owner
    blocked = (await create_task(stub, user, agent)).task_id
    others = [(await create_task(stub, user, agent)).task_id for _ in range(6)]
    await asyncio.gather(*[append(stub, user, t, message("warm")) for t in [blocked, *others]])
    async with row_locked(settings, blocked):
        stuck = asyncio.ensure_future(append(stub, user, blocked, message("stuck")))
        impatient = [
            stub.AppendTaskEvents(
                runtime_pb2.AppendTaskEventsRequest(task_id=t, events=[message("impatient")]), metadata=user
            )
            for t in others[:3]
        ]
        patient = [asyncio.ensure_future(append(stub, user, t, message("patient"))) for t in others[3:]]

        async def waiting() -> bool:
            return await lock_waiters(settings) > 0

        await eventually(waiting, "a call to wait for the locked row")
        for call in impatient:
            call.cancel()
    replies = await asyncio.wait_for(asyncio.gather(*patient), 15)
    assert [r.events[0].seq for r in replies] == [3, 3, 3]
    assert (await asyncio.wait_for(stuck, 15)).events[0].seq == 3
    for task_id in others:
        seqs = [e.seq for e in await all_events(stub, user, task_id)]
        assert seqs == list(range(1, len(seqs) + 1))
