"""Cron schedules: standard methods, validation, reference checks, firing, exactly once across
two replicas, and one firing after downtime.

Tests never wait for a minute boundary: they move a schedule's next_fire_at into the past, as a
clock would, and the scheduler (polling every 0.2 s in tests) fires it."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import psycopg

from nexus.kit.config import Settings
from nexus.kit.postgres import service_url
from nexus.ontology.v1 import ontology_pb2
from nexus.runtime.v1 import runtime_pb2, schedule_pb2, task_pb2
from tests.runtime.conftest import Metadata, create_agent, create_skill
from tests.support import Tokens, eventually, rpc_error

HOURLY = "0 * * * *"


def new_schedule(agent: str, cron: str = HOURLY, **command: Any) -> schedule_pb2.CreateScheduleRequest:
    inputs = command.pop("inputs", {"url": "https://acme.com", "depth": 2})
    request = schedule_pb2.CreateScheduleRequest(
        schedule=schedule_pb2.Schedule(
            cron=cron,
            time_zone=command.pop("time_zone", "Asia/Shanghai"),
            command=schedule_pb2.ScheduledCommand(
                agent_id=agent, title=command.pop("title", "nightly scan"), **command
            ),
        )
    )
    request.schedule.command.inputs.update(inputs)
    return request


async def scan_skill(ontology: Any, tokens: Tokens, agent: str) -> str:
    """A system skill of the agent that takes a url (required) and a depth."""
    definition = ontology_pb2.SkillDefinition(
        inputs=[
            ontology_pb2.InputField(name="url", type=ontology_pb2.INPUT_TYPE_URL, required=True),
            ontology_pb2.InputField(name="depth", type=ontology_pb2.INPUT_TYPE_INTEGER),
        ]
    )
    skill_id = f"scan-{agent}"
    skill = ontology_pb2.Skill(agent_id=agent, name="scan", definition=definition)
    admin = tokens.service("ontology.admin")
    await ontology.CreateSkill(ontology_pb2.CreateSkillRequest(skill=skill, skill_id=skill_id), metadata=admin)
    return skill_id


async def sql(settings: Settings, statement: str, *params: Any) -> list[Any]:
    """Async: the runtime under test shares this event loop (a blocking call could wait on a
    lock that only the loop can release)."""
    url = service_url(settings, "runtime", driver="postgresql")
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cursor = await conn.execute(statement, params)
        return await cursor.fetchall() if cursor.description else []


async def make_due(settings: Settings, schedule_ids: list[str], due: datetime) -> None:
    """What the clock does: the schedules' next time has come (at `due`, in the past)."""
    await sql(settings, "UPDATE runtime.schedule SET next_fire_at = %s WHERE id = ANY(%s::uuid[])", due, schedule_ids)


async def fired(settings: Settings, schedule_ids: list[str]) -> bool:
    rows = await sql(
        settings,
        "SELECT count(*) FROM runtime.schedule WHERE id = ANY(%s::uuid[]) AND next_fire_at <= now()",
        schedule_ids,
    )
    return bool(rows[0][0] == 0)


async def fired_tasks(stub: Any, metadata: Metadata, agent: str) -> list[task_pb2.Task]:
    reply = await stub.ListTasks(runtime_pb2.ListTasksRequest(agent_id=agent, page_size=1000), metadata=metadata)
    return list(reply.tasks)


async def test_create_get_list_pause_resume_and_delete(
    schedules: Any, ontology: Any, tokens: Tokens, agent: str
) -> None:
    user_id, user = tokens.user()
    skill = await scan_skill(ontology, tokens, agent)
    created = await schedules.CreateSchedule(new_schedule(agent, "30 9 * * mon-fri", skill_id=skill), metadata=user)
    assert (created.user_id, created.state, created.command.skill_id) == (
        user_id,
        schedule_pb2.SCHEDULE_STATE_ACTIVE,
        skill,
    )
    assert created.command.inputs["depth"] == 2 and created.time_zone == "Asia/Shanghai"
    next_fire = created.next_fire_time.ToDatetime(tzinfo=UTC)
    assert next_fire > datetime.now(UTC) and (next_fire.hour, next_fire.minute) == (1, 30)  # 09:30 in Shanghai
    assert next_fire.weekday() < 5
    got = await schedules.GetSchedule(schedule_pb2.GetScheduleRequest(schedule_id=created.schedule_id), metadata=user)
    assert got == created

    paused = await schedules.PauseSchedule(
        schedule_pb2.PauseScheduleRequest(schedule_id=created.schedule_id, etag=created.etag), metadata=user
    )
    assert paused.state == schedule_pb2.SCHEDULE_STATE_PAUSED and not paused.HasField("next_fire_time")
    again = await schedules.PauseSchedule(
        schedule_pb2.PauseScheduleRequest(schedule_id=created.schedule_id), metadata=user
    )
    assert again == paused  # idempotent
    stale = await rpc_error(
        schedules.ResumeSchedule(
            schedule_pb2.ResumeScheduleRequest(schedule_id=created.schedule_id, etag=created.etag), metadata=user
        )
    )
    assert (stale.code, stale.reason) == (grpc.StatusCode.ABORTED, "ETAG_MISMATCH")
    resumed = await schedules.ResumeSchedule(
        schedule_pb2.ResumeScheduleRequest(schedule_id=created.schedule_id), metadata=user
    )
    assert resumed.state == schedule_pb2.SCHEDULE_STATE_ACTIVE and resumed.next_fire_time == created.next_fire_time

    more = [(await schedules.CreateSchedule(new_schedule(agent), metadata=user)).schedule_id for _ in range(2)]
    seen: list[str] = []
    token = ""
    while True:
        page = await schedules.ListSchedules(
            schedule_pb2.ListSchedulesRequest(page_size=2, page_token=token), metadata=user
        )
        seen += [s.schedule_id for s in page.schedules]
        token = page.next_page_token
        if not token:
            break
    assert seen == [*reversed(more), created.schedule_id]
    await schedules.DeleteSchedule(schedule_pb2.DeleteScheduleRequest(schedule_id=created.schedule_id), metadata=user)
    failure = await rpc_error(
        schedules.GetSchedule(schedule_pb2.GetScheduleRequest(schedule_id=created.schedule_id), metadata=user)
    )
    assert (failure.code, failure.reason) == (grpc.StatusCode.NOT_FOUND, "SCHEDULE_NOT_FOUND")


async def test_cron_time_zone_and_command_are_validated_with_clear_errors(
    schedules: Any, ontology: Any, tokens: Tokens, owner: tuple[str, Metadata], agent: str
) -> None:
    _, user = owner
    cases = [
        (new_schedule(agent, "61 * * * *"), "schedule.cron", "minute (field 1): values must be within 0-59"),
        (new_schedule(agent, "* * *"), "schedule.cron", "must have 5 fields"),
        (new_schedule(agent, "0 0 30 2 *"), "schedule.cron", "names no time that ever comes"),
        (new_schedule(agent, time_zone="Mars/Olympus"), "schedule.time_zone", "names no IANA time zone"),
        (new_schedule(agent, title=""), "schedule.command.title", "is required"),
    ]
    for request, field, description in cases:
        failure = await rpc_error(schedules.CreateSchedule(request, metadata=user))
        assert failure.code == grpc.StatusCode.INVALID_ARGUMENT
        assert [(v.field, v.description[: len(description)]) for v in failure.violations] == [(field, description)]
    # References are checked with the ontology service, as for tasks.
    failure = await rpc_error(schedules.CreateSchedule(new_schedule("no-such-agent"), metadata=user))
    assert (failure.reason, failure.fields) == ("AGENT_NOT_FOUND", {"schedule.command.agent_id"})
    other_skill = await create_skill(ontology, tokens, await create_agent(ontology, tokens))
    failure = await rpc_error(schedules.CreateSchedule(new_schedule(agent, skill_id=other_skill), metadata=user))
    assert (failure.reason, failure.fields) == ("SKILL_OF_ANOTHER_AGENT", {"schedule.command.skill_id"})


async def test_a_due_schedule_fires_a_cron_task_from_its_command_and_after_downtime_only_once(
    stub: Any, schedules: Any, ontology: Any, tokens: Tokens, settings: Settings, agent: str
) -> None:
    user_id, user = tokens.user()
    skill = await scan_skill(ontology, tokens, agent)
    created = await schedules.CreateSchedule(new_schedule(agent, HOURLY, skill_id=skill), metadata=user)
    # The runtime was down for five hours: five hourly times were missed.
    due = (datetime.now(UTC) - timedelta(hours=5)).replace(minute=0, second=0, microsecond=0)
    await make_due(settings, [created.schedule_id], due)
    await eventually(lambda: fired(settings, [created.schedule_id]), "the due schedule to fire")
    tasks = await fired_tasks(stub, user, agent)
    assert len(tasks) == 1
    task = tasks[0]
    assert (task.trigger_source, task.user_id, task.schedule_id) == (
        task_pb2.TRIGGER_SOURCE_CRON_TRIGGER,
        user_id,
        created.schedule_id,
    )
    assert (task.origin_skill_id, task.title, task.inputs["url"], task.status) == (
        skill,
        "nightly scan",
        "https://acme.com",
        task_pb2.TASK_STATUS_QUEUED,
    )
    after = await schedules.GetSchedule(schedule_pb2.GetScheduleRequest(schedule_id=created.schedule_id), metadata=user)
    assert after.last_task_id == task.task_id and after.last_fire_time.ToDatetime(tzinfo=UTC) == due
    next_fire = after.next_fire_time.ToDatetime(tzinfo=UTC)
    assert datetime.now(UTC) < next_fire <= datetime.now(UTC) + timedelta(hours=1)
    # A paused schedule does not fire: once a canary (another agent's) made due after the pause
    # has fired, the scheduler has passed over the paused one.
    await schedules.PauseSchedule(schedule_pb2.PauseScheduleRequest(schedule_id=created.schedule_id), metadata=user)
    canary = await schedules.CreateSchedule(new_schedule(await create_agent(ontology, tokens)), metadata=user)
    await make_due(settings, [canary.schedule_id], due)
    await eventually(lambda: fired(settings, [canary.schedule_id]), "a scheduler round after the pause")
    assert len(await fired_tasks(stub, user, agent)) == 1


async def test_each_due_time_fires_exactly_once_with_two_replicas(
    stub: Any, schedules: Any, tokens: Tokens, settings: Settings, second_replica: str, agent: str
) -> None:
    """Both this process's runtime and a second runtime process poll every 0.2 s; the due
    schedules outnumber one firing batch, so both take part."""
    _, user = tokens.user()
    ids = [(await schedules.CreateSchedule(new_schedule(agent), metadata=user)).schedule_id for _ in range(60)]
    base = datetime(2024, 1, 1, tzinfo=UTC)
    rounds = 3
    for round_ in range(rounds):
        await make_due(settings, ids, base + timedelta(hours=round_))
        await eventually(lambda: fired(settings, ids), f"round {round_} of due schedules to fire")
    tasks = await fired_tasks(stub, user, agent)
    assert len(tasks) == len(ids) * rounds
    assert Counter(t.schedule_id for t in tasks) == dict.fromkeys(ids, rounds)
    # One task per schedule and due time.
    rows = await sql(
        settings,
        "SELECT count(DISTINCT (schedule_id, scheduled_at)) FROM runtime.task WHERE schedule_id = ANY(%s::uuid[])",
        ids,
    )
    assert rows == [(len(ids) * rounds,)]


async def test_a_due_time_that_fires_again_finds_its_first_task_however_late(
    stub: Any, schedules: Any, tokens: Tokens, settings: Settings, agent: str
) -> None:
    """A second firing of one due time (a replica that read the schedule before the first
    firing committed) makes no second task: the task's schedule and due time are unique
    together, which no request id's lifetime bounds."""
    _, user = tokens.user()
    created = await schedules.CreateSchedule(new_schedule(agent), metadata=user)
    due = datetime(2024, 1, 1, tzinfo=UTC)
    await make_due(settings, [created.schedule_id], due)
    await eventually(lambda: fired(settings, [created.schedule_id]), "the first firing")
    [first] = await fired_tasks(stub, user, agent)
    await make_due(settings, [created.schedule_id], due)
    await eventually(lambda: fired(settings, [created.schedule_id]), "the same due time firing again")
    assert [t.task_id for t in await fired_tasks(stub, user, agent)] == [first.task_id]
    after = await schedules.GetSchedule(schedule_pb2.GetScheduleRequest(schedule_id=created.schedule_id), metadata=user)
    assert after.last_task_id == first.task_id


async def test_the_commands_typed_inputs_must_fit_the_skills_declared_inputs(
    schedules: Any, ontology: Any, tokens: Tokens, owner: tuple[str, Metadata], agent: str
) -> None:
    _, user = owner
    await scan_skill(ontology, tokens, agent)
    fits = await schedules.CreateSchedule(
        new_schedule(agent, skill_id=f"scan-{agent}", inputs={"url": "https://acme.com", "depth": 2}), metadata=user
    )
    assert fits.command.inputs["depth"] == 2
    failure = await rpc_error(
        schedules.CreateSchedule(
            new_schedule(agent, skill_id=f"scan-{agent}", inputs={"depth": "deep", "colour": "red"}), metadata=user
        )
    )
    assert (failure.code, failure.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INPUTS_DO_NOT_FIT_SKILL")
    assert failure.fields == {
        "schedule.command.inputs.depth",
        "schedule.command.inputs.colour",
        "schedule.command.inputs.url",
    }
