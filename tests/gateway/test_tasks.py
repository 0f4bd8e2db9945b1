"""Tasks through the gateway: RunCommand, StartChat, SubmitInput, CancelTask, GetTask and the
sidebar. A test's worker drives tasks through the runtime's worker RPCs."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import grpc

from nexus.gateway.v1 import gateway_pb2 as pb
from nexus.kit.validation import struct_to_dict
from nexus.runtime.v1 import runtime_pb2, runtime_pb2_grpc, task_pb2, workspace_pb2
from tests.gateway.conftest import Account, Catalog, Platform, Scan, SignUp, Worker, upload_artifact
from tests.support import rpc_error

if TYPE_CHECKING:
    from nexus.gateway.v1.gateway_pb2_grpc import GatewayServiceAsyncStub as Stub
    from nexus.runtime.v1.workspace_pb2_grpc import WorkspaceServiceAsyncStub as WorkspaceStub


async def first_events(gw: Stub, account: Account, task_id: str, count: int) -> list[task_pb2.TaskEvent]:
    """The first `count` events of a task that has not ended (its stream stays open)."""
    call = gw.StreamTask(pb.StreamTaskRequest(task_id=task_id), metadata=account.md)
    events: list[task_pb2.TaskEvent] = []
    async for event in call:
        events.append(event)
        if len(events) == count:
            call.cancel()
            break
    return events


async def test_run_command_creates_a_slash_command_task_with_the_skill_and_typed_inputs(
    gw: Stub, alice: Account, scan: Scan
) -> None:
    task = await gw.RunCommand(pb.RunCommandRequest(text=f"{scan.trigger} https://acme.com"), metadata=alice.md)
    assert task.user_id == alice.user_id
    assert (task.agent_id, task.origin_skill_id) == (scan.agent_id, scan.skill.id)
    assert task.trigger_source == task_pb2.TRIGGER_SOURCE_SLASH_COMMAND
    assert task.status == task_pb2.TASK_STATUS_QUEUED
    # Typed and with defaults applied, exactly as the ontology resolved them.
    assert struct_to_dict(task.inputs) == {"url": "https://acme.com", "depth": "quick"}
    assert task.title == "Scan a site · https://acme.com"


async def test_a_command_that_does_not_resolve_gets_the_ontologys_violations_unchanged(
    gw: Stub, alice: Account, scan: Scan
) -> None:
    bad = await rpc_error(
        gw.RunCommand(pb.RunCommandRequest(text=f"{scan.trigger} not-a-url depth=huge"), metadata=alice.md)
    )
    assert (bad.code, bad.domain) == (grpc.StatusCode.INVALID_ARGUMENT, "nexus.ontology.v1")
    assert bad.fields == {"inputs.url", "inputs.depth"}
    missing = await rpc_error(gw.RunCommand(pb.RunCommandRequest(text=scan.trigger), metadata=alice.md))
    assert (missing.code, missing.fields) == (grpc.StatusCode.INVALID_ARGUMENT, {"inputs.url"})
    unknown = await rpc_error(gw.RunCommand(pb.RunCommandRequest(text=scan.trigger + "x"), metadata=alice.md))
    assert (unknown.code, unknown.domain) == (grpc.StatusCode.NOT_FOUND, "nexus.ontology.v1")


async def test_a_retried_run_command_with_the_same_request_id_creates_one_task(
    gw: Stub, alice: Account, scan: Scan
) -> None:
    request = pb.RunCommandRequest(text=f"{scan.trigger} https://acme.com", request_id=str(uuid.uuid4()))
    first, again = await asyncio.gather(
        gw.RunCommand(request, metadata=alice.md), gw.RunCommand(request, metadata=alice.md)
    )
    assert first.task_id == again.task_id
    third = await gw.RunCommand(request, metadata=alice.md)
    assert third.task_id == first.task_id


async def test_start_chat_creates_a_chat_task_whose_first_user_event_holds_the_text(
    gw: Stub, alice: Account, catalog: Catalog
) -> None:
    agent_id = await catalog.agent()
    request = pb.StartChatRequest(agent_id=agent_id, text="Hello!\nWhat can you do?", request_id=str(uuid.uuid4()))
    task = await gw.StartChat(request, metadata=alice.md)
    assert task.trigger_source == task_pb2.TRIGGER_SOURCE_CHAT_MANUAL
    assert (task.agent_id, task.title, task.last_seq) == (agent_id, "Hello! What can you do?", 2)
    assert struct_to_dict(task.inputs) == {"text": "Hello!\nWhat can you do?"}
    # A retry returns the same task and appends the message once.
    assert (await gw.StartChat(request, metadata=alice.md)).task_id == task.task_id
    events = await first_events(gw, alice, task.task_id, 2)
    assert [(e.seq, e.role, e.type) for e in events] == [
        (1, task_pb2.EVENT_ROLE_SYSTEM, task_pb2.EVENT_TYPE_STATUS),
        (2, task_pb2.EVENT_ROLE_USER, task_pb2.EVENT_TYPE_MESSAGE),
    ]
    assert events[1].content_text == "Hello!\nWhat can you do?"
    assert (await gw.GetTask(pb.GetTaskRequest(task_id=task.task_id), metadata=alice.md)).last_seq == 2
    unknown = await rpc_error(gw.StartChat(pb.StartChatRequest(agent_id="no_such_agent", text="hi"), metadata=alice.md))
    assert (unknown.code, unknown.domain, unknown.fields) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "nexus.runtime.v1",
        {"task.agent_id"},
    )


async def test_submit_input_answers_a_waiting_task_and_it_is_queued_again(
    gw: Stub, alice: Account, scan: Scan, worker: Worker
) -> None:
    task = await gw.RunCommand(pb.RunCommandRequest(text=f"{scan.trigger} https://acme.com"), metadata=alice.md)
    early = await rpc_error(gw.SubmitInput(pb.SubmitInputRequest(task_id=task.task_id, text="x"), metadata=alice.md))
    assert (early.code, early.domain) == (grpc.StatusCode.FAILED_PRECONDITION, "nexus.runtime.v1")
    claimed = await worker.claim(scan.agent_id)
    await worker.ask(claimed, "Focus on what?")
    answered = await gw.SubmitInput(pb.SubmitInputRequest(task_id=task.task_id, text="pricing"), metadata=alice.md)
    assert answered.status == task_pb2.TASK_STATUS_QUEUED
    events = await first_events(gw, alice, task.task_id, answered.last_seq)
    answer = [e for e in events if e.role == task_pb2.EVENT_ROLE_USER]
    assert [e.content_text for e in answer] == ["pricing"]


async def test_cancel_task_ends_the_task_and_is_idempotent(gw: Stub, alice: Account, scan: Scan) -> None:
    task = await gw.RunCommand(pb.RunCommandRequest(text=f"{scan.trigger} https://acme.com"), metadata=alice.md)
    cancelled = await gw.CancelTask(
        pb.CancelTaskRequest(task_id=task.task_id, reason="changed my mind"), metadata=alice.md
    )
    assert cancelled.status == task_pb2.TASK_STATUS_CANCELLED
    again = await gw.CancelTask(pb.CancelTaskRequest(task_id=task.task_id), metadata=alice.md)
    assert (again.status, again.last_seq) == (task_pb2.TASK_STATUS_CANCELLED, cancelled.last_seq)


async def test_the_sidebar_has_pinned_tasks_then_recent_ones_without_archived_tasks(
    gw: Stub, sign_up: SignUp, scan: Scan, platform: Platform, open_channel: Callable[[str], grpc.aio.Channel]
) -> None:
    account = await sign_up()
    runtime = runtime_pb2_grpc.RuntimeServiceStub(open_channel(platform.runtime.address))
    created = []
    for n in range(5):
        text = f"{scan.trigger} https://acme.com/{n}"
        created.append(await gw.RunCommand(pb.RunCommandRequest(text=text), metadata=account.md))

    for changed in (
        task_pb2.Task(task_id=created[1].task_id, is_pinned=True),
        task_pb2.Task(task_id=created[3].task_id, is_archived=True),
    ):
        await runtime.UpdateTask(runtime_pb2.UpdateTaskRequest(task=changed), metadata=account.md)
    sidebar = await gw.GetSidebar(pb.GetSidebarRequest(recent_page_size=2), metadata=account.md)
    assert [t.task_id for t in sidebar.pinned_tasks] == [created[1].task_id]
    assert [t.task_id for t in sidebar.recent_tasks] == [created[4].task_id, created[2].task_id]
    everything = await gw.GetSidebar(pb.GetSidebarRequest(), metadata=account.md)
    assert [t.task_id for t in everything.recent_tasks] == [created[i].task_id for i in (4, 2, 0)]


async def test_run_command_seeds_the_plan_from_the_skill_and_the_variables_from_the_inputs(
    gw: Stub, alice: Account, scan: Scan, workspace: WorkspaceStub
) -> None:
    task = await gw.RunCommand(pb.RunCommandRequest(text=f"{scan.trigger} https://acme.com"), metadata=alice.md)
    plan = await workspace.GetTaskPlan(workspace_pb2.GetTaskPlanRequest(task_id=task.task_id), metadata=alice.md)
    assert [(s.step_id, s.title, s.action, list(s.depends_on), s.status) for s in plan.steps] == [
        ("announce", "Announce", "message", [], workspace_pb2.PLAN_STEP_STATUS_PENDING),
        ("ask", "Ask", "ask_user", ["announce"], workspace_pb2.PLAN_STEP_STATUS_PENDING),
        ("report", "Report", "write_artifact", ["ask"], workspace_pb2.PLAN_STEP_STATUS_PENDING),
    ]
    assert plan.current_step_index == 0
    context = await workspace.GetTaskContext(
        workspace_pb2.GetTaskContextRequest(task_id=task.task_id), metadata=alice.md
    )
    assert struct_to_dict(context.variables) == {"url": "https://acme.com", "depth": "quick"}


async def test_seeding_leaves_a_plan_under_way_and_a_plan_that_a_worker_holds(
    gw: Stub, alice: Account, scan: Scan, worker: Worker, workspace: WorkspaceStub, runtime: Any
) -> None:
    request = pb.RunCommandRequest(text=f"{scan.trigger} https://acme.com", request_id=str(uuid.uuid4()))
    task = await gw.RunCommand(request, metadata=alice.md)
    claimed = await worker.claim(scan.agent_id)
    await worker.step(claimed, "announce", "running")
    retried = await gw.RunCommand(request, metadata=alice.md)  # a retry after the worker started
    assert retried.task_id == task.task_id
    plan = await workspace.GetTaskPlan(workspace_pb2.GetTaskPlanRequest(task_id=task.task_id), metadata=alice.md)
    assert plan.steps[0].status == workspace_pb2.PLAN_STEP_STATUS_RUNNING

    # The same request_id for another request (a bare task, then a command) is refused: no seed
    # reaches the task a worker already holds.
    request_id = str(uuid.uuid4())
    bare = task_pb2.Task(agent_id=scan.agent_id, trigger_source=task_pb2.TRIGGER_SOURCE_SLASH_COMMAND, title="t")
    early = await runtime.CreateTask(runtime_pb2.CreateTaskRequest(task=bare, request_id=request_id), metadata=alice.md)
    await worker.claim(scan.agent_id)
    late = await rpc_error(
        gw.RunCommand(
            pb.RunCommandRequest(text=f"{scan.trigger} https://acme.com", request_id=request_id), metadata=alice.md
        )
    )
    assert (late.code, late.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "REQUEST_ID_REUSED")
    untouched = await workspace.GetTaskPlan(workspace_pb2.GetTaskPlanRequest(task_id=early.task_id), metadata=alice.md)
    assert list(untouched.steps) == []


async def test_the_sidebar_lists_pinned_artifacts(gw: Stub, sign_up: SignUp, scan: Scan, artifacts: Any) -> None:
    account = await sign_up()
    task = await gw.RunCommand(pb.RunCommandRequest(text=f"{scan.trigger} https://acme.com"), metadata=account.md)
    pinned = await upload_artifact(
        artifacts, account.md, task.task_id, b"# pinned", display_name="a.md", is_pinned=True
    )
    await upload_artifact(artifacts, account.md, task.task_id, b"# not pinned", display_name="b.md")
    sidebar = await gw.GetSidebar(pb.GetSidebarRequest(), metadata=account.md)
    assert [a.artifact_id for a in sidebar.pinned_artifacts] == [pinned.artifact_id]
    assert [t.task_id for t in sidebar.recent_tasks] == [task.task_id]
