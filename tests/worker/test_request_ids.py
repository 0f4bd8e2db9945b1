"""A step the worker runs again finds the artifact its first run wrote, however long ago: the
upload's request id is remembered only for its lifetime (NEXUS_REQUEST_ID_TTL_S), and the
worker's "no effect happens twice" must not end with it."""

from __future__ import annotations

from datetime import timedelta

import psycopg
from google.protobuf import duration_pb2

from nexus.kit.auth import bearer_metadata
from nexus.kit.config import Settings
from nexus.kit.postgres import service_url
from nexus.runtime.v1 import runtime_pb2, task_pb2
from tests.worker.conftest import (
    Owner,
    RunWorker,
    Services,
    artifacts_of,
    create_skill,
    create_task,
    seed_plan,
    step,
    wait_status,
)
from worker import steps
from worker.leased import LeasedTask, Stubs

NOTES = step("report", "write_artifact", display_name="Notes", type="markdown", content="# Notes")
WRAP = step("wrap", "message", ["report"], text="Done")


async def forget(settings: Settings, request_id: str) -> None:
    """What the request id's lifetime ending does: the log's pruning deletes its entry. (Async:
    the runtime under test shares this event loop.)"""
    url = service_url(settings, "runtime", driver="postgresql")
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("DELETE FROM runtime.request_log WHERE request_id = %s", [request_id])


async def test_a_step_run_again_after_its_request_id_is_forgotten_finds_its_first_artifact(
    services: Services, owner: Owner, agent: str, run_worker: RunWorker, worker_token: str, settings: Settings
) -> None:
    skill = await create_skill(services, agent, NOTES, WRAP)
    task = await create_task(services, owner, agent, skill_id=skill.id)
    await seed_plan(services, owner, task.task_id, NOTES, WRAP)

    # A first worker starts the step and uploads its artifact, then stops before the plan says
    # the step is done (it crashed): its lease runs out and the task is queued again.
    stubs = Stubs(
        runtime=services.runtime,
        workspace=services.workspace,
        artifacts=services.artifacts,
        ontology=services.ontology,
        metadata=bearer_metadata(worker_token),
    )
    lease = duration_pb2.Duration()
    lease.FromTimedelta(timedelta(seconds=0.5))
    claim = runtime_pb2.ClaimTasksRequest(agent_ids=[agent], max_tasks=1, lease_duration=lease)
    [claimed] = (await services.runtime.ClaimTasks(claim, metadata=stubs.metadata)).claimed
    first_run = LeasedTask(stubs, claimed)
    await first_run.update_step("report", "running")
    request_id = steps.artifact_request_id(task.task_id, "report")
    first = await first_run.upload(
        request_id=request_id,
        artifact_type="markdown",
        display_name="Notes",
        content_type=steps.content_type("markdown"),
        data=b"# Notes",
    )
    await wait_status(services, owner, task.task_id, task_pb2.TASK_STATUS_QUEUED)
    await forget(settings, request_id)

    async with run_worker(agents=[agent]):
        await wait_status(services, owner, task.task_id, task_pb2.TASK_STATUS_FINISHED)
    assert [a.artifact_id for a in await artifacts_of(services, owner, task.task_id)] == [first.artifact_id]
