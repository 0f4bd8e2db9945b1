"""CrystallizeSkill: a finished task becomes a private skill (and command) of its owner."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import grpc

from nexus.gateway.v1 import gateway_pb2 as pb
from nexus.kit.validation import struct_to_dict, value_to_json
from nexus.ontology.v1 import ontology_pb2 as onto
from nexus.runtime.v1 import task_pb2, workspace_pb2
from tests.gateway.conftest import Account, Catalog, Scan, SignUp, Worker, unique
from tests.support import rpc_error

if TYPE_CHECKING:
    from nexus.gateway.v1.gateway_pb2_grpc import GatewayServiceAsyncStub as Stub


async def finished_scan(gw: Stub, account: Account, scan: Scan, worker: Worker, text: str = "") -> task_pb2.Task:
    """A /scan task that ran to the end: every plan step done."""
    task = await gw.RunCommand(
        pb.RunCommandRequest(text=text or f"{scan.trigger} https://acme.com depth=deep"), metadata=account.md
    )
    claimed = await worker.claim(scan.agent_id)
    for step in ("announce", "ask", "report"):
        await worker.step(claimed, step, "done")
    await worker.finish(claimed)
    return task


def crystallize(task_id: str, name: str = "Weekly scan", **fields: Any) -> pb.CrystallizeSkillRequest:
    return pb.CrystallizeSkillRequest(task_id=task_id, name=name, **fields)


async def test_a_finished_task_becomes_a_private_skill_and_command_that_runs_it_again(
    gw: Stub, sign_up: SignUp, scan: Scan, worker: Worker, workspace: Any
) -> None:
    ada = await sign_up()
    task = await finished_scan(gw, ada, scan, worker)
    trigger = "/" + unique("weekly")
    made = await gw.CrystallizeSkill(crystallize(task.task_id, trigger=trigger), metadata=ada.md)

    skill = made.skill
    assert skill.id.startswith("usr_") and skill.created_by_user_id == ada.user_id and not skill.is_public
    assert (skill.agent_id, skill.name) == (scan.agent_id, "Weekly scan")
    assert skill.description == f"Crystallized from the task “{task.title}”."
    assert [(s.id, s.action, list(s.depends_on)) for s in skill.definition.steps] == [
        (s.id, s.action, list(s.depends_on)) for s in scan.skill.definition.steps
    ]
    # The origin skill's inputs, with the task's values as defaults; none required any more.
    inputs = {f.name: f for f in skill.definition.inputs}
    assert list(inputs) == ["url", "depth"]
    assert inputs["url"].type == onto.INPUT_TYPE_URL and inputs["depth"].type == onto.INPUT_TYPE_ENUM
    assert {n: value_to_json(f.default_value) for n, f in inputs.items()} == {
        "url": "https://acme.com",
        "depth": "deep",
    }
    assert not any(f.required for f in inputs.values())
    assert (made.command.trigger, made.command.target_skill_id, made.command.owner_user_id) == (
        trigger,
        skill.id,
        ada.user_id,
    )

    # The new command alone repeats the task; arguments override its values.
    again = await gw.RunCommand(pb.RunCommandRequest(text=trigger), metadata=ada.md)
    assert (again.origin_skill_id, struct_to_dict(again.inputs)) == (
        skill.id,
        {"url": "https://acme.com", "depth": "deep"},
    )
    other = await gw.RunCommand(pb.RunCommandRequest(text=f"{trigger} https://example.org"), metadata=ada.md)
    assert struct_to_dict(other.inputs)["url"] == "https://example.org"
    plan = await workspace.GetTaskPlan(workspace_pb2.GetTaskPlanRequest(task_id=again.task_id), metadata=ada.md)
    assert [s.step_id for s in plan.steps] == ["announce", "ask", "report"]


async def test_without_a_trigger_only_the_skill_is_made_and_a_retry_makes_nothing_new(
    gw: Stub, alice: Account, scan: Scan, worker: Worker
) -> None:
    task = await finished_scan(gw, alice, scan, worker)
    request = crystallize(task.task_id, request_id=str(uuid.uuid4()))
    first = await gw.CrystallizeSkill(request, metadata=alice.md)
    assert first.skill.id and not first.HasField("command")
    assert (await gw.CrystallizeSkill(request, metadata=alice.md)).skill.id == first.skill.id


async def test_a_task_without_its_origin_skill_gets_inputs_inferred_from_its_values(
    gw: Stub, alice: Account, catalog: Catalog, worker: Worker
) -> None:
    agent_id = await catalog.agent()
    chat = await gw.StartChat(
        pb.StartChatRequest(agent_id=agent_id, text="Summarise https://acme.com"), metadata=alice.md
    )
    claimed = await worker.claim(agent_id)
    await worker.set_plan(
        claimed,
        workspace_pb2.PlanStep(step_id="Read.Page", title="Read", action="message"),
        workspace_pb2.PlanStep(step_id="answer", title="Answer", action="message", depends_on=["Read.Page"]),
    )
    await worker.finish(claimed)
    made = await gw.CrystallizeSkill(crystallize(chat.task_id, name="Summarise"), metadata=alice.md)
    assert [(s.id, list(s.depends_on)) for s in made.skill.definition.steps] == [
        ("read_page", []),
        ("answer", ["read_page"]),
    ]
    (text,) = made.skill.definition.inputs
    assert (text.name, text.type, text.required) == ("text", onto.INPUT_TYPE_STRING, False)
    assert value_to_json(text.default_value) == "Summarise https://acme.com"


async def test_only_a_finished_task_with_a_plan_can_be_crystallized(
    gw: Stub, alice: Account, scan: Scan, catalog: Catalog, worker: Worker
) -> None:
    running = await gw.RunCommand(pb.RunCommandRequest(text=f"{scan.trigger} https://acme.com"), metadata=alice.md)
    early = await rpc_error(gw.CrystallizeSkill(crystallize(running.task_id), metadata=alice.md))
    assert (early.code, early.reason, early.domain) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "TASK_NOT_FINISHED",
        "nexus.gateway.v1",
    )
    agent_id = await catalog.agent()
    chat = await gw.StartChat(pb.StartChatRequest(agent_id=agent_id, text="hi"), metadata=alice.md)
    await worker.finish(await worker.claim(agent_id))
    planless = await rpc_error(gw.CrystallizeSkill(crystallize(chat.task_id), metadata=alice.md))
    assert (planless.code, planless.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "TASK_HAS_NO_PLAN")


async def test_a_taken_trigger_is_refused_and_no_skill_is_left_behind(
    gw: Stub, sign_up: SignUp, scan: Scan, worker: Worker, catalog: Catalog
) -> None:
    ada = await sign_up()
    task = await finished_scan(gw, ada, scan, worker)
    taken = await rpc_error(gw.CrystallizeSkill(crystallize(task.task_id, trigger=scan.trigger), metadata=ada.md))
    assert (taken.code, taken.fields) == (grpc.StatusCode.ALREADY_EXISTS, {"trigger"})
    mine = await catalog.stub.ListSkills(onto.ListSkillsRequest(ownership=onto.OWNERSHIP_MINE), metadata=ada.md)
    assert list(mine.skills) == []
    # Another user cannot crystallize Ada's task: to them it does not exist.
    eve = await sign_up()
    hidden = await rpc_error(gw.CrystallizeSkill(crystallize(task.task_id), metadata=eve.md))
    assert (hidden.code, hidden.domain) == (grpc.StatusCode.NOT_FOUND, "nexus.runtime.v1")
