"""The whole path through the gateway with the reference worker doing the work: sign up, /scan a
site, stream it, answer its question, find the finished task with its artifact in the sidebar and
in memory search, crystallize it into a private command, run that, and see that another user
sees none of it."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Sequence

import grpc

from nexus.client import NexusClient
from nexus.kit.auth import bearer_metadata
from nexus.kit.validation import struct_to_dict
from nexus.ontology.v1 import ontology_pb2 as onto
from nexus.ontology.v1 import ontology_pb2_grpc as onto_grpc
from nexus.runtime.v1 import task_pb2
from tests.e2e.conftest import SCAN_AGENT, Platform, Serving
from tests.support import rpc_error

PASSWORD = "correct horse battery"


async def follow(client: NexusClient, task_id: str, answers: Sequence[str]) -> list[task_pb2.TaskEvent]:
    """The task's events through the gateway until it ends, answering each question in turn."""
    left = list(answers)

    async def read() -> list[task_pb2.TaskEvent]:
        seen = []
        async for event in client.stream_task(task_id):
            seen.append(event)
            if event.type == task_pb2.EVENT_TYPE_STATUS and event.metadata["status"] == "waiting_input":
                await client.submit_input(task_id, left.pop(0))
        return seen

    return await asyncio.wait_for(read(), 30)


def agent_said(events: list[task_pb2.TaskEvent]) -> list[str]:
    return [
        e.content_text or f"{e.render_payload['component']}@{e.render_payload['target_zone']}"
        for e in events
        if e.role == task_pb2.EVENT_ROLE_ASSISTANT
    ]


async def test_sign_up_scan_answer_find_crystallize_rerun_and_nobody_else_sees_it(
    platform: Platform, serving: Serving, open_channel: Callable[[str], grpc.aio.Channel]
) -> None:
    address = platform.gateway.address
    async with serving(SCAN_AGENT), NexusClient(address) as ada, NexusClient(address) as eve:
        await ada.sign_up(f"ada-{secrets.token_hex(4)}@example.com", PASSWORD)
        await eve.sign_up(f"eve-{secrets.token_hex(4)}@example.com", PASSWORD)

        # /scan: the gateway resolves it and creates the task with its plan; the worker runs it.
        task = await ada.run_command("/scan https://example.com")
        assert (task.agent_id, task.origin_skill_id) == (SCAN_AGENT, "scan_website")
        events = await follow(ada, task.task_id, ["pricing"])
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert [e.metadata["status"] for e in events if e.type == task_pb2.EVENT_TYPE_STATUS] == [
            "queued",
            "running",
            "waiting_input",
            "queued",
            "running",
            "finished",
        ]
        assert agent_said(events) == [
            "Scanning https://example.com (standard scan).",
            "web_preview@canvas",
            "What should the scan of https://example.com focus on? For example pricing, product, team or hiring.",
            "progress@status",
            "artifact_viewer@canvas",
            "Done. The scan report of https://example.com is in your artifacts.",
        ]

        finished = await ada.get_task(task.task_id)
        assert finished.status == task_pb2.TASK_STATUS_FINISHED
        [artifact] = (await ada.list_artifacts(task.task_id)).artifacts
        assert artifact.display_name == "Scan of https://example.com"
        assert struct_to_dict(finished.result)["artifact_ids"] == [artifact.artifact_id]
        sidebar = await ada.get_sidebar()
        assert task.task_id in [t.task_id for t in sidebar.recent_tasks]
        found = await ada.search_memories("pricing")
        assert [r.memory.task_id for r in found.results] == [task.task_id]
        assert found.results[0].memory.summary_text == "Scanned https://example.com (standard) with a focus on pricing."

        # Crystallize it into a private command, and run that.
        trigger = f"/scan{secrets.token_hex(3)}"
        made = await ada.crystallize_skill(task.task_id, "Scan example.com", trigger=trigger)
        assert made.command.trigger == trigger and made.skill.created_by_user_id
        assert trigger in [c.trigger for c in await ada.complete_command(trigger[:5])]
        rerun = await ada.run_command(trigger)
        assert rerun.origin_skill_id == made.skill.id
        rerun_events = await follow(ada, rerun.task_id, ["team"])
        assert rerun_events[-1].metadata["status"] == "finished"
        assert "Done. The scan report of https://example.com is in your artifacts." in agent_said(rerun_events)
        [rerun_artifact] = (await ada.list_artifacts(rerun.task_id)).artifacts
        assert rerun_artifact.display_name == "Scan of https://example.com"

        # Eve sees none of it.
        for attempt in (
            eve.get_task(task.task_id),
            eve.get_task(rerun.task_id),
            eve.list_artifacts(task.task_id),
            eve.submit_input(task.task_id, "mine"),
            eve.crystallize_skill(task.task_id, "Mine now"),
            eve.run_command(trigger),
        ):
            assert (await rpc_error(attempt)).code == grpc.StatusCode.NOT_FOUND
        stream_failure = await rpc_error(anext(eve.stream_task(task.task_id)))
        assert stream_failure.code == grpc.StatusCode.NOT_FOUND
        nothing = await eve.get_sidebar()
        assert not nothing.recent_tasks and not nothing.pinned_tasks and not nothing.pinned_artifacts
        assert list((await eve.list_artifacts()).artifacts) == []
        assert list((await eve.search_memories("pricing")).results) == []
        assert trigger not in [c.trigger for c in await eve.complete_command(trigger[:5])]
        # The private skill, asked of the ontology directly with Eve's own token.
        assert eve.tokens is not None
        ontology = onto_grpc.OntologyServiceStub(open_channel(platform.ontology.address))
        as_eve = bearer_metadata(eve.tokens.access_token)
        missing = await rpc_error(ontology.GetSkill(onto.GetSkillRequest(skill_id=made.skill.id), metadata=as_eve))
        assert missing.code == grpc.StatusCode.NOT_FOUND
        listed = await ontology.ListSkills(onto.ListSkillsRequest(agent_id=SCAN_AGENT), metadata=as_eve)
        assert made.skill.id not in [s.id for s in listed.skills]
