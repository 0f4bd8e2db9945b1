"""The reference worker claims only the agents it implements: by default the seed catalog's agents
whose skills use the actions it knows. A task for any other agent (one another worker serves) is
left queued for that worker; `--agent` and NEXUS_WORKER_AGENTS choose another list."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from catalog import CATALOG_FILE
from nexus.runtime.v1 import task_pb2
from tests.worker.conftest import (
    WAIT_S,
    Owner,
    Services,
    StartWorker,
    all_events,
    create_task,
    get_task,
    wait_for,
    wait_status,
)
from worker import options
from worker.agents import catalog_agents

CATALOG_AGENTS = ("web_researcher_v1", "writer_v1", "assistant_v1")


def statuses(events: list[task_pb2.TaskEvent]) -> list[str]:
    return [str(e.metadata["status"]) for e in events if e.type == task_pb2.EVENT_TYPE_STATUS]


async def test_the_reference_worker_never_claims_another_workers_agent_and_still_runs_the_catalogs(
    services: Services, owner: Owner, agent: str, worker_process: StartWorker
) -> None:
    """`agent` is not the catalog's: think of a billing bot whose own worker is down right now."""
    foreign = await create_task(services, owner, agent, trigger=task_pb2.TRIGGER_SOURCE_CHAT_MANUAL, title="invoice")
    ours = await create_task(
        services, owner, "assistant_v1", skill_id="answer_question", inputs={"question": "what is a lease?"}
    )
    worker = await worker_process()  # no --agent: the default

    async def ours_finished() -> bool:
        assert worker.process.returncode is None, f"the worker exited:\n{worker.tail()}"
        return (await get_task(services, owner, ours.task_id)).status == task_pb2.TASK_STATUS_FINISHED

    await wait_for(ours_finished, "the catalog agent's task to finish")
    # The foreign task was queued first, and the worker has claimed and finished a later one since.
    left = await get_task(services, owner, foreign.task_id)
    assert left.status == task_pb2.TASK_STATUS_QUEUED, worker.tail()
    assert statuses(await all_events(services, owner, foreign.task_id)) == ["queued"]
    worker.process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(worker.process.wait(), WAIT_S) == 0, worker.tail()


async def test_an_agent_list_given_to_the_worker_replaces_the_catalogs(
    services: Services, owner: Owner, agent: str, worker_process: StartWorker
) -> None:
    task = await create_task(services, owner, agent, trigger=task_pb2.TRIGGER_SOURCE_CHAT_MANUAL, title="hello")
    await worker_process("--agent", agent)
    await wait_status(services, owner, task.task_id, task_pb2.TASK_STATUS_FINISHED)


def test_the_default_agents_are_the_catalogs_whose_skills_use_known_actions(tmp_path: Path) -> None:
    assert catalog_agents() == CATALOG_AGENTS
    assert catalog_agents(CATALOG_FILE) == options.Options().validate().agents
    mixed = tmp_path / "catalog.toml"
    mixed.write_text(
        """
[[agents]]
id = "ours"
[[agents]]
id = "billing_bot"
[[skills]]
id = "talk"
agent = "ours"
definition = { steps = [{ id = "hi", action = "message", args = { text = "hi" } }] }
[[skills]]
id = "charge"
agent = "billing_bot"
definition = { steps = [{ id = "pay", action = "charge_card", args = {} }] }
"""
    )
    assert catalog_agents(mixed) == ("ours",)


def test_nexus_worker_agents_and_the_flag_choose_the_agents() -> None:
    assert options.from_env({"NEXUS_WORKER_AGENTS": " billing_bot, ops_bot ,"}).validate().agents == (
        "billing_bot",
        "ops_bot",
    )
    assert options.from_env({}).with_overrides(agents=("a",)).validate().agents == ("a",)
    assert options.from_env({"NEXUS_WORKER_AGENTS": ""}).validate().agents == CATALOG_AGENTS
