"""The whole path through the gateway, with the client a client app would use; the test plays the
worker: sign up, /scan a URL, stream, answer, finished with an artifact, found in the sidebar and
in memory search, crystallized into a private command that runs, and none of it visible to a
second user."""

from __future__ import annotations

import asyncio

import grpc

from nexus.client import NexusClient
from nexus.runtime.v1 import task_pb2
from tests.gateway.conftest import PASSWORD, Platform, Scan, Worker, unique
from tests.support import rpc_error


async def work(worker: Worker, scan: Scan) -> None:
    claimed = await worker.claim(scan.agent_id)
    await worker.step(claimed, "announce", "running")
    await worker.say(claimed, "Scanning https://acme.com")
    await worker.step(claimed, "announce", "done")
    await worker.step(claimed, "ask", "running")
    await worker.ask(claimed, "What should I focus on?")
    resumed = await worker.next_claim(scan.agent_id)
    await worker.step(resumed, "ask", "done")
    await worker.step(resumed, "report", "running")
    await worker.write_artifact(resumed, "acme-report.md", b"# Acme\nThree plans.", is_pinned=True)
    await worker.step(resumed, "report", "done")
    await worker.remember(resumed, "Acme sells three pricing plans", "the enterprise plan has no public price")
    await worker.finish(resumed, report="acme-report.md")


async def test_sign_up_scan_answer_find_crystallize_rerun_and_nobody_else_sees_it(
    platform: Platform, scan: Scan, worker: Worker
) -> None:
    async with NexusClient(platform.gateway.address) as ada, NexusClient(platform.gateway.address) as eve:
        await ada.sign_up(f"{unique('ada')}@example.com", PASSWORD)
        await eve.sign_up(f"{unique('eve')}@example.com", PASSWORD)

        task = await ada.run_command(f"{scan.trigger} https://acme.com")
        worker_done = asyncio.ensure_future(work(worker, scan))
        seen: list[task_pb2.TaskEvent] = []
        async for event in ada.stream_task(task.task_id):
            seen.append(event)
            if event.type == task_pb2.EVENT_TYPE_STATUS and event.metadata["status"] == "waiting_input":
                await ada.submit_input(task.task_id, "pricing")
        await worker_done
        assert [e.seq for e in seen] == list(range(1, len(seen) + 1))
        assert seen[-1].metadata["status"] == "finished"
        assert "pricing" in [e.content_text for e in seen if e.role == task_pb2.EVENT_ROLE_USER]

        finished = await ada.get_task(task.task_id)
        assert finished.status == task_pb2.TASK_STATUS_FINISHED
        listed = await ada.list_artifacts(task.task_id)
        assert [a.display_name for a in listed.artifacts] == ["acme-report.md"]
        sidebar = await ada.get_sidebar()
        assert [t.task_id for t in sidebar.recent_tasks] == [task.task_id]
        assert [a.display_name for a in sidebar.pinned_artifacts] == ["acme-report.md"]
        found = await ada.search_memories("pricing plans")
        assert [r.memory.task_id for r in found.results] == [task.task_id]

        trigger = "/" + unique("acme")
        made = await ada.crystallize_skill(task.task_id, "Scan Acme", trigger=trigger)
        assert made.command.trigger == trigger
        rerun = await ada.run_command(trigger)
        assert (rerun.origin_skill_id, rerun.status) == (made.skill.id, task_pb2.TASK_STATUS_QUEUED)

        # Eve sees none of it.
        for attempt in (
            eve.get_task(task.task_id),
            eve.list_artifacts(task.task_id),
            eve.run_command(trigger),
            eve.crystallize_skill(task.task_id, "mine now"),
        ):
            assert (await rpc_error(attempt)).code == grpc.StatusCode.NOT_FOUND
        empty = await eve.get_sidebar()
        assert not empty.recent_tasks and not empty.pinned_tasks and not empty.pinned_artifacts
        assert list((await eve.search_memories("pricing plans")).results) == []
        assert list((await eve.list_artifacts()).artifacts) == []
        assert [c.trigger for c in await eve.complete_command(trigger)] == []
