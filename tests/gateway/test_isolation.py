"""A gateway client can never reach another user's data: the gateway forwards each caller's own
token, so every service answers user B NOT_FOUND for user A's objects, and lists never show them."""

from __future__ import annotations

from collections.abc import AsyncIterable, Awaitable
from typing import TYPE_CHECKING, Any

import grpc

from nexus.gateway.v1 import gateway_pb2 as pb
from nexus.kit.validation import dict_to_struct
from nexus.ontology.v1 import ontology_pb2 as onto
from nexus.runtime.v1 import task_pb2, workspace_pb2
from tests.gateway.conftest import Catalog, Scan, SignUp, Worker, unique, upload_artifact
from tests.support import rpc_error

if TYPE_CHECKING:
    from nexus.gateway.v1.gateway_pb2_grpc import GatewayServiceAsyncStub as Stub


async def drain(call: AsyncIterable[Any]) -> None:
    async for _ in call:
        pass


async def test_user_b_gets_not_found_for_every_gateway_rpc_on_user_a_data(
    gw: Stub, sign_up: SignUp, scan: Scan, worker: Worker, catalog: Catalog, workspace: Any, artifacts: Any
) -> None:
    a, b = await sign_up(), await sign_up()
    # A: a task waiting for input, a connection, and a private skill with a private command.
    task = await gw.RunCommand(pb.RunCommandRequest(text=f"{scan.trigger} https://a.example"), metadata=a.md)
    await worker.ask(await worker.claim(scan.agent_id), "Which pages?")
    connection = await gw.ConnectAgent(
        pb.ConnectAgentRequest(
            agent_id=scan.agent_id, provider="notion", display_name="A's", credentials=dict_to_struct({"k": "v"})
        ),
        metadata=a.md,
    )
    definition = onto.SkillDefinition(steps=[onto.Step(id="hi", action="message")])
    private = await catalog.stub.CreateSkill(
        onto.CreateSkillRequest(skill=onto.Skill(agent_id=scan.agent_id, name="mine", definition=definition)),
        metadata=a.md,
    )
    trigger = "/" + unique("private")
    await catalog.stub.CreateCommand(
        onto.CreateCommandRequest(
            command=onto.Command(trigger=trigger, agent_id=scan.agent_id, target_skill_id=private.id)
        ),
        metadata=a.md,
    )

    memory = workspace_pb2.TaskMemory(task_id=task.task_id, summary_text="A's secret findings about pricing")
    await workspace.PutTaskMemory(workspace_pb2.PutTaskMemoryRequest(memory=memory), metadata=a.md)
    await upload_artifact(artifacts, a.md, task.task_id, b"A's report", is_pinned=True)

    attempts: dict[str, Awaitable[Any]] = {
        "GetTask": gw.GetTask(pb.GetTaskRequest(task_id=task.task_id), metadata=b.md),
        "StreamTask": drain(gw.StreamTask(pb.StreamTaskRequest(task_id=task.task_id), metadata=b.md)),
        "SubmitInput": gw.SubmitInput(pb.SubmitInputRequest(task_id=task.task_id, text="pwned"), metadata=b.md),
        "CancelTask": gw.CancelTask(pb.CancelTaskRequest(task_id=task.task_id), metadata=b.md),
        "DisconnectAgent": gw.DisconnectAgent(pb.DisconnectAgentRequest(connection_id=connection.id), metadata=b.md),
        "RunCommand": gw.RunCommand(pb.RunCommandRequest(text=trigger), metadata=b.md),
        "ListArtifacts": gw.ListArtifacts(pb.ListArtifactsRequest(task_id=task.task_id), metadata=b.md),
        "CrystallizeSkill": gw.CrystallizeSkill(
            pb.CrystallizeSkillRequest(task_id=task.task_id, name="stolen"), metadata=b.md
        ),
    }
    for name, attempt in attempts.items():
        failure = await rpc_error(attempt)
        assert failure.code == grpc.StatusCode.NOT_FOUND, (name, failure)

    # Lists and compositions show B only B's own data.
    sidebar = await gw.GetSidebar(pb.GetSidebarRequest(), metadata=b.md)
    assert not sidebar.pinned_tasks and not sidebar.recent_tasks and not sidebar.pinned_artifacts
    search = await gw.SearchMemories(pb.SearchMemoriesRequest(query="secret findings pricing"), metadata=b.md)
    assert list(search.results) == []
    settings = await gw.GetAgentSettings(pb.GetAgentSettingsRequest(agent_id=scan.agent_id), metadata=b.md)
    assert list(settings.connections) == []
    completion = await gw.CompleteCommand(pb.CompleteCommandRequest(prefix=trigger), metadata=b.md)
    assert list(completion.commands) == []
    me = await gw.GetMe(pb.GetMeRequest(), metadata=b.md)
    assert me.user.id == b.user_id and me.profile.user_id == b.user_id

    # A's objects are untouched, and still A's.
    mine = await gw.GetTask(pb.GetTaskRequest(task_id=task.task_id), metadata=a.md)
    assert mine.status == task_pb2.TASK_STATUS_WAITING_INPUT
    theirs = await gw.GetAgentSettings(pb.GetAgentSettingsRequest(agent_id=scan.agent_id), metadata=a.md)
    assert [c.id for c in theirs.connections] == [connection.id]
    own = await gw.GetSidebar(pb.GetSidebarRequest(), metadata=a.md)
    assert [t.task_id for t in own.recent_tasks] == [task.task_id] and len(own.pinned_artifacts) == 1
    found = await gw.SearchMemories(pb.SearchMemoriesRequest(query="secret findings pricing"), metadata=a.md)
    assert [r.memory.task_id for r in found.results] == [task.task_id]
    assert [
        c.trigger for c in (await gw.CompleteCommand(pb.CompleteCommandRequest(prefix=trigger), metadata=a.md)).commands
    ] == [trigger]


async def test_a_service_token_does_not_make_the_gateway_act_for_a_user(
    gw: Stub, alice: Any, scan: Scan, worker: Worker
) -> None:
    """The gateway trusts no identity of its own: a worker's token through it is still a worker."""
    task = await gw.RunCommand(pb.RunCommandRequest(text=f"{scan.trigger} https://a.example"), metadata=alice.md)
    refused = await rpc_error(
        gw.RunCommand(pb.RunCommandRequest(text=f"{scan.trigger} https://a.example"), metadata=worker.md)
    )
    assert refused.code == grpc.StatusCode.PERMISSION_DENIED
    cancel = await rpc_error(gw.CancelTask(pb.CancelTaskRequest(task_id=task.task_id), metadata=worker.md))
    assert cancel.code == grpc.StatusCode.PERMISSION_DENIED
