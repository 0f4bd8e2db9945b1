"""The plan: set and update by the lease holder (or the owner while no worker holds the task),
validated like a skill's step graph, a `plan` event for every change, in the task's gapless log."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from google.protobuf import struct_pb2

from nexus.runtime.v1 import runtime_pb2, task_pb2, workspace_pb2
from tests.runtime.conftest import Metadata, all_events, append, claim_one, collect, create_task, said
from tests.support import Tokens, rpc_error

PENDING = workspace_pb2.PLAN_STEP_STATUS_PENDING
RUNNING = workspace_pb2.PLAN_STEP_STATUS_RUNNING
DONE = workspace_pb2.PLAN_STEP_STATUS_DONE


def steps(*graph: tuple[str, list[str]]) -> list[workspace_pb2.PlanStep]:
    out = []
    for step_id, deps in graph:
        step = workspace_pb2.PlanStep(step_id=step_id, title=f"do {step_id}", action="read_url", depends_on=deps)
        step.args.update({"url": f"https://acme.com/{step_id}"})
        out.append(step)
    return out


SCAN = steps(("fetch", []), ("parse", ["fetch"]), ("report", ["parse"]))


async def set_plan(workspace: Any, metadata: Metadata, task_id: str, lease_id: str = "", **kw: Any) -> Any:
    request = workspace_pb2.SetTaskPlanRequest(task_id=task_id, steps=kw.pop("plan", SCAN), lease_id=lease_id, **kw)
    return await workspace.SetTaskPlan(request, metadata=metadata)


async def step_to(
    workspace: Any, metadata: Metadata, task_id: str, step_id: str, status: Any, lease_id: str = "", **kw: Any
) -> Any:
    request = workspace_pb2.UpdatePlanStepRequest(
        task_id=task_id, step_id=step_id, status=status, lease_id=lease_id, **kw
    )
    return await workspace.UpdatePlanStep(request, metadata=metadata)


async def test_the_owner_sets_a_plan_before_a_worker_claims_and_each_change_is_a_plan_event(
    stub: Any, workspace: Any, owner: tuple[str, Metadata], worker: Metadata, agent: str
) -> None:
    _, user = owner
    task = await create_task(stub, user, agent)
    empty = await workspace.GetTaskPlan(workspace_pb2.GetTaskPlanRequest(task_id=task.task_id), metadata=user)
    assert (list(empty.steps), empty.current_step_index, empty.HasField("update_time")) == ([], 0, False)
    plan = await set_plan(workspace, user, task.task_id, etag=empty.etag)
    assert [s.step_id for s in plan.steps] == ["fetch", "parse", "report"]
    assert [s.status for s in plan.steps] == [PENDING] * 3 and plan.current_step_index == 0
    assert plan.steps[0].args["url"] == "https://acme.com/fetch"

    stream = asyncio.ensure_future(collect(stub, user, task.task_id))
    claimed = await claim_one(stub, worker, agent)
    lease = claimed.lease.lease_id
    plan = await step_to(workspace, worker, task.task_id, "fetch", RUNNING, lease)
    assert plan.current_step_index == 0
    output = workspace_pb2.UpdatePlanStepRequest().output
    output.update({"bytes": 1024})
    plan = await step_to(workspace, worker, task.task_id, "fetch", DONE, lease, output=output)
    assert (plan.current_step_index, plan.steps[0].output["bytes"]) == (1, 1024)
    await stub.FinishTask(runtime_pb2.FinishTaskRequest(task_id=task.task_id, lease_id=lease), metadata=worker)

    events = await asyncio.wait_for(stream, 10)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    plan_events = [e for e in events if e.type == task_pb2.EVENT_TYPE_PLAN]
    assert [e.metadata["change"] for e in plan_events] == ["set", "step", "step"]
    assert all(e.role == task_pb2.EVENT_ROLE_SYSTEM for e in plan_events)
    outline = plan_events[0].metadata.fields["steps"].list_value.values
    assert [s.struct_value["id"] for s in outline] == ["fetch", "parse", "report"]
    assert [(e.metadata["step_id"], e.metadata["status"], e.metadata["previous_status"]) for e in plan_events[1:]] == [
        ("fetch", "running", "pending"),
        ("fetch", "done", "running"),
    ]
    assert [e.metadata["current_step_index"] for e in plan_events] == [0, 0, 1]
    assert events[-1].metadata["status"] == "finished"  # the terminal status event is still last
    # Nothing writes the plan after the task ended.
    failure = await rpc_error(step_to(workspace, user, task.task_id, "parse", RUNNING))
    assert (failure.code, failure.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "TASK_ENDED")


async def test_only_the_lease_holder_writes_the_plan_while_a_worker_holds_the_task(
    stub: Any, workspace: Any, owner: tuple[str, Metadata], worker: Metadata, tokens: Tokens, agent: str
) -> None:
    _, user = owner
    task = await create_task(stub, user, agent)
    claimed = await claim_one(stub, worker, agent)
    failure = await rpc_error(set_plan(workspace, user, task.task_id))
    assert (failure.code, failure.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "LEASE_HELD")
    other = tokens.service("runtime.worker", name="another-worker")
    failure = await rpc_error(set_plan(workspace, other, task.task_id, claimed.lease.lease_id))
    assert (failure.code, failure.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "LEASE_NOT_HELD")
    plan = await set_plan(workspace, worker, task.task_id, claimed.lease.lease_id)
    assert len(plan.steps) == 3
    # When the worker lets go (it asks the owner a question), the owner may change the plan.
    await stub.RequestInput(
        runtime_pb2.RequestInputRequest(task_id=task.task_id, lease_id=claimed.lease.lease_id, question=said("ok?")),
        metadata=worker,
    )
    plan = await step_to(workspace, user, task.task_id, "fetch", workspace_pb2.PLAN_STEP_STATUS_SKIPPED)
    assert plan.current_step_index == 1
    failure = await rpc_error(set_plan(workspace, worker, task.task_id, claimed.lease.lease_id))
    assert (failure.code, failure.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "LEASE_NOT_HELD")


async def test_plans_are_validated_like_skill_graphs_and_the_error_names_the_cycle(
    stub: Any, workspace: Any, owner: tuple[str, Metadata], agent: str
) -> None:
    _, user = owner
    task = await create_task(stub, user, agent)
    cyclic = steps(("a", ["c"]), ("b", ["a"]), ("c", ["b"]))
    failure = await rpc_error(set_plan(workspace, user, task.task_id, plan=cyclic))
    assert (failure.code, failure.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PLAN")
    assert [(v.field, v.description) for v in failure.violations] == [
        ("steps[0].depends_on", "forms a cycle: a → c → b → a")
    ]
    broken = steps(("a", []), ("a", []), ("b", ["nope"]))
    failure = await rpc_error(set_plan(workspace, user, task.task_id, plan=broken))
    assert failure.fields == {"steps[1].step_id", "steps[2].depends_on[0]"}
    await set_plan(workspace, user, task.task_id)
    failure = await rpc_error(step_to(workspace, user, task.task_id, "parse", DONE))
    assert (failure.code, failure.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "PLAN_STEP_BLOCKED")
    failure = await rpc_error(step_to(workspace, user, task.task_id, "missing", DONE))
    assert (failure.code, failure.reason) == (grpc.StatusCode.NOT_FOUND, "PLAN_STEP_NOT_FOUND")
    failure = await rpc_error(step_to(workspace, user, task.task_id, "fetch", DONE, etag='W/"0"'))
    assert (failure.code, failure.reason) == (grpc.StatusCode.ABORTED, "ETAG_MISMATCH")
    # None of the refused writes appended anything: the created event and one plan event.
    assert [e.type for e in await all_events(stub, user, task.task_id)] == [
        task_pb2.EVENT_TYPE_STATUS,
        task_pb2.EVENT_TYPE_PLAN,
    ]


async def test_plan_events_interleave_with_concurrent_appends_without_gaps(
    stub: Any, workspace: Any, owner: tuple[str, Metadata], worker: Metadata, agent: str
) -> None:
    _, user = owner
    task = await create_task(stub, user, agent)
    claimed = await claim_one(stub, worker, agent)
    lease = claimed.lease.lease_id
    many = steps(*[(f"s{i}", []) for i in range(20)])
    await set_plan(workspace, worker, task.task_id, lease, plan=many)
    stream = asyncio.ensure_future(collect(stub, user, task.task_id))

    async def appends() -> None:
        for i in range(40):
            await append(stub, worker, task.task_id, said(f"m{i}"), lease_id=lease)

    async def plan_changes() -> None:
        for i in range(20):
            await step_to(workspace, worker, task.task_id, f"s{i}", RUNNING, lease)

    await asyncio.gather(appends(), appends(), plan_changes())
    await stub.FinishTask(runtime_pb2.FinishTaskRequest(task_id=task.task_id, lease_id=lease), metadata=worker)
    streamed = await asyncio.wait_for(stream, 10)
    stored = await all_events(stub, user, task.task_id)
    assert [e.seq for e in stored] == list(range(1, 1 + 2 + 1 + 80 + 20 + 1))
    assert [e.seq for e in streamed] == [e.seq for e in stored]
    assert sum(e.type == task_pb2.EVENT_TYPE_PLAN for e in stored) == 21


async def test_a_task_created_with_its_plan_and_variables_has_them_before_any_worker_can_claim_it(
    stub: Any, workspace: Any, owner: tuple[str, Metadata], agent: str
) -> None:
    _, user = owner
    steps = [
        workspace_pb2.PlanStep(step_id="ask", title="Ask", action="ask_user"),
        workspace_pb2.PlanStep(step_id="say", title="Say", action="message", depends_on=["ask"]),
    ]
    variables = struct_pb2.Struct()
    variables.update({"url": "https://acme.com"})
    task = task_pb2.Task(agent_id=agent, trigger_source=task_pb2.TRIGGER_SOURCE_SLASH_COMMAND, title="seeded")
    request = runtime_pb2.CreateTaskRequest(task=task, initial_plan=steps, initial_variables=variables)
    created = await stub.CreateTask(request, metadata=user)
    events = await all_events(stub, user, created.task_id)
    assert [(e.seq, e.type) for e in events] == [(1, task_pb2.EVENT_TYPE_STATUS), (2, task_pb2.EVENT_TYPE_PLAN)]
    plan = await workspace.GetTaskPlan(workspace_pb2.GetTaskPlanRequest(task_id=created.task_id), metadata=user)
    assert [s.step_id for s in plan.steps] == ["ask", "say"]
    context = await workspace.GetTaskContext(
        workspace_pb2.GetTaskContextRequest(task_id=created.task_id), metadata=user
    )
    assert context.variables["url"] == "https://acme.com"
    # A cyclic first plan is refused with the task: nothing is created.
    steps[0].depends_on.append("say")
    failure = await rpc_error(
        stub.CreateTask(runtime_pb2.CreateTaskRequest(task=task, initial_plan=steps), metadata=user)
    )
    assert (failure.code, failure.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PLAN")
