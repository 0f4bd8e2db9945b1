"""The reference worker in-process against real ontology and runtime servers: catalog skills run
to completion, questions wait for the owner and resume, bad steps fail their task clearly and
the worker keeps serving, chat tasks are acknowledged, and a cancelled task is let go at once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from launch.cli import main as nexus
from nexus.kit.config import Settings
from nexus.kit.validation import dict_to_struct, struct_to_dict
from nexus.runtime.v1 import artifact_pb2, runtime_pb2, task_pb2, workspace_pb2
from tests.support import Tokens
from tests.worker.conftest import (
    Owner,
    RunWorker,
    Services,
    all_events,
    artifacts_of,
    copy_skill,
    create_skill,
    create_task,
    follow,
    get_task,
    plan_of,
    seed_plan,
    step,
    wait_for,
    wait_status,
)
from worker.loop import Worker
from worker.options import Options


def said(events: list[task_pb2.TaskEvent]) -> list[str]:
    """What the agent said and rendered, in order: message texts and `component@zone`."""
    out = []
    for e in events:
        if e.role != task_pb2.EVENT_ROLE_ASSISTANT:
            continue
        if e.type == task_pb2.EVENT_TYPE_NEXUS_RENDER:
            out.append(f"{e.render_payload['component']}@{e.render_payload['target_zone']}")
        else:
            out.append(e.content_text)
    return out


def plan_changes(events: list[task_pb2.TaskEvent]) -> list[tuple[str, str]]:
    return [
        (str(e.metadata["step_id"]), str(e.metadata["status"]))
        for e in events
        if e.type == task_pb2.EVENT_TYPE_PLAN and e.metadata["change"] == "step"
    ]


async def test_the_catalog_scan_skill_runs_to_completion_with_plan_messages_renders_an_artifact_and_memory(
    services: Services, owner: Owner, agent: str, run_worker: RunWorker
) -> None:
    skill = await copy_skill(services, "scan_website", agent)
    task = await create_task(
        services, owner, agent, skill_id=skill.id, inputs={"url": "https://acme.com", "depth": "standard"}
    )
    # No plan seeded: the worker seeds it from the task's skill (as when a claim beats RunCommand).
    async with run_worker(agents=[agent]):
        events = await follow(services, owner, task.task_id, answers=["pricing"])

    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    statuses = [e.metadata["status"] for e in events if e.type == task_pb2.EVENT_TYPE_STATUS]
    assert statuses == ["queued", "running", "waiting_input", "queued", "running", "finished"]
    assert said(events) == [
        "Scanning https://acme.com (standard scan).",
        "web_preview@canvas",
        "What should the scan of https://acme.com focus on? For example pricing, product, team or hiring.",
        "progress@status",
        "artifact_viewer@canvas",
        "Done. The scan report of https://acme.com is in your artifacts.",
    ]
    progress = next(
        e for e in events if e.type == task_pb2.EVENT_TYPE_NEXUS_RENDER and e.render_payload["component"] == "progress"
    )
    assert struct_to_dict(progress.render_payload)["props"] == {
        "label": "Scanning https://acme.com for pricing",
        "percent": 60,
    }
    order = [
        "announce",
        "open_preview",
        "note_target",
        "ask_focus",
        "show_progress",
        "write_report",
        "show_report",
        "remember",
        "wrap_up",
    ]
    expected_changes = [(s, status) for s in order for status in ("running", "done")]
    assert plan_changes(events) == expected_changes
    # The answer is the user event right after the question, and ask_focus stayed running across it.
    question = next(i for i, e in enumerate(events) if e.content_text.startswith("What should"))
    answer = next(e for e in events[question + 1 :] if e.role != task_pb2.EVENT_ROLE_SYSTEM)
    assert (answer.role, answer.content_text) == (task_pb2.EVENT_ROLE_USER, "pricing")
    assert all(e.client_key.startswith("worker:") for e in events if e.role == task_pb2.EVENT_ROLE_ASSISTANT)

    finished = await get_task(services, owner, task.task_id)
    assert finished.status == task_pb2.TASK_STATUS_FINISHED
    assert set(await plan_of(services, owner, task.task_id)) == set(order)
    assert set((await plan_of(services, owner, task.task_id)).values()) == {"done"}
    [artifact] = await artifacts_of(services, owner, task.task_id)
    assert (artifact.display_name, artifact.type) == ("Scan of https://acme.com", "markdown")
    assert artifact.content_type.startswith("text/markdown")
    download = services.artifacts.DownloadArtifact(
        artifact_pb2.DownloadArtifactRequest(artifact_id=artifact.artifact_id),
        metadata=owner.md,
    )
    content = b"".join([part.chunk async for part in download]).decode()
    assert "- Focus: pricing" in content and "The standard scan of https://acme.com looked at pricing." in content
    assert struct_to_dict(finished.result) == {
        "summary": "Scanned https://acme.com (standard) with a focus on pricing.",
        "steps": 9,
        "artifact_ids": [artifact.artifact_id],
    }
    memory = await services.workspace.GetTaskMemory(
        workspace_pb2.GetTaskMemoryRequest(task_id=task.task_id), metadata=owner.md
    )
    assert memory.summary_text == "Scanned https://acme.com (standard) with a focus on pricing."
    assert list(memory.key_takeaways) == ["Target: https://acme.com", "Focus: pricing"]
    context = await services.workspace.GetTaskContext(
        workspace_pb2.GetTaskContextRequest(task_id=task.task_id), metadata=owner.md
    )
    assert struct_to_dict(context.variables) == {
        "url": "https://acme.com",
        "depth": "standard",
        "target_url": "https://acme.com",
        "focus": "pricing",
    }
    assert list(context.active_files) == [artifact.artifact_id]


async def test_an_answer_resumes_the_task_on_another_worker_from_where_the_plan_says_it_stopped(
    services: Services, owner: Owner, agent: str, run_worker: RunWorker
) -> None:
    steps = [
        step("hello", "message", text="Hi {{ inputs.name }}"),
        step("ask", "ask_user", ["hello"], question="Your favourite colour, {{ vars.name }}?", variable="colour"),
        step(
            "note",
            "set_variable",
            ["ask"],
            name="palette",
            value={"main": "{{ vars.colour }}", "names": ["{{ inputs.name }}"]},
        ),
        step("bye", "message", ["note"], text="{{ vars.colour }} it is: {{ vars.palette }}"),
    ]
    skill = await create_skill(services, agent, *steps)
    task = await create_task(services, owner, agent, skill_id=skill.id, inputs={"name": "Ada"})
    # What RunCommand seeds: the plan, and one variable per input.
    await seed_plan(services, owner, task.task_id, *steps)
    await services.workspace.PatchTaskContext(
        workspace_pb2.PatchTaskContextRequest(task_id=task.task_id, variables_patch=dict_to_struct({"name": "Ada"})),
        metadata=owner.md,
    )

    async with run_worker(agents=[agent]):
        await wait_status(services, owner, task.task_id, task_pb2.TASK_STATUS_WAITING_INPUT)
    assert await plan_of(services, owner, task.task_id) == {
        "hello": "done",
        "ask": "running",
        "note": "pending",
        "bye": "pending",
    }
    # The owner answers while no worker runs; a different worker picks the task up.
    answer = task_pb2.TaskEvent(role=task_pb2.EVENT_ROLE_USER, type=task_pb2.EVENT_TYPE_MESSAGE, content_text="teal")
    await services.runtime.ProvideInput(
        runtime_pb2.ProvideInputRequest(task_id=task.task_id, answer=answer), metadata=owner.md
    )
    async with run_worker(agents=[agent]):
        await wait_status(services, owner, task.task_id, task_pb2.TASK_STATUS_FINISHED)

    events = await all_events(services, owner, task.task_id)
    assert said(events) == ["Hi Ada", "Your favourite colour, Ada?", 'teal it is: {"main":"teal","names":["Ada"]}']
    assert plan_changes(events) == [
        ("hello", "running"),
        ("hello", "done"),
        ("ask", "running"),
        ("ask", "done"),
        ("note", "running"),
        ("note", "done"),
        ("bye", "running"),
        ("bye", "done"),
    ]
    # No write_memory step: the memory is drawn from the events.
    memory = await services.workspace.GetTaskMemory(
        workspace_pb2.GetTaskMemoryRequest(task_id=task.task_id), metadata=owner.md
    )
    assert memory.summary_text.startswith("a task. Hi Ada")
    assert list(memory.key_takeaways) == ["Your favourite colour, Ada? → teal"]


async def test_bad_steps_fail_their_task_with_a_clear_error_and_the_worker_keeps_working(
    services: Services, owner: Owner, agent: str, run_worker: RunWorker
) -> None:
    unknown = await create_skill(
        services, agent, step("hello", "message", text="Hi"), step("warp", "teleport", ["hello"], to="mars")
    )
    typo = await create_skill(services, agent, step("hello", "message", text="Hi {{ inputs.nmae }}"))
    no_text = await create_skill(services, agent, step("hello", "message", words="Hi"))
    good = await create_skill(services, agent, step("hello", "message", text="Hi {{ inputs.name }}"))
    tasks = [
        await create_task(services, owner, agent, skill_id=skill.id, inputs={"name": "Ada"})
        for skill in (unknown, typo, no_text, good)
    ]
    async with run_worker(agents=[agent], concurrency=1):
        ended = [
            await wait_status(services, owner, tasks[0].task_id, task_pb2.TASK_STATUS_FAILED),
            await wait_status(services, owner, tasks[1].task_id, task_pb2.TASK_STATUS_FAILED),
            await wait_status(services, owner, tasks[2].task_id, task_pb2.TASK_STATUS_FAILED),
            await wait_status(services, owner, tasks[3].task_id, task_pb2.TASK_STATUS_FINISHED),
        ]
    errors = [(t.error.reason, t.error.message) for t in ended[:3]]
    assert errors[0][0] == "UNKNOWN_ACTION"
    assert errors[0][1].startswith("step 'warp' (teleport): unknown action 'teleport'; the reference worker runs")
    assert errors[1] == (
        "UNKNOWN_TEMPLATE_NAME",
        "step 'hello' (message): args.text: template names unknown input 'nmae'",
    )
    assert errors[2] == ("BAD_STEP_ARGS", "step 'hello' (message): message: missing arg 'text'")
    assert struct_to_dict(ended[0].error.details) == {"action": "teleport", "step_id": "warp"}
    assert await plan_of(services, owner, tasks[0].task_id) == {"hello": "done", "warp": "failed"}
    # The failed step never emitted anything; the task's last event is the failure.
    events = await all_events(services, owner, tasks[0].task_id)
    assert said(events) == ["Hi"]
    assert events[-1].metadata["status"] == "failed"


async def test_a_chat_task_is_acknowledged_remembered_and_finished(
    services: Services, owner: Owner, agent: str, run_worker: RunWorker
) -> None:
    text = "Can you look at acme.com for me?"
    task = await create_task(
        services, owner, agent, trigger=task_pb2.TRIGGER_SOURCE_CHAT_MANUAL, title="Acme?", inputs={"text": text}
    )
    first = task_pb2.TaskEvent(role=task_pb2.EVENT_ROLE_USER, type=task_pb2.EVENT_TYPE_MESSAGE, content_text=text)
    await services.runtime.AppendTaskEvents(
        runtime_pb2.AppendTaskEventsRequest(task_id=task.task_id, events=[first]), metadata=owner.md
    )
    async with run_worker(agents=[agent]):
        events = await follow(services, owner, task.task_id)
    [reply] = said(events)
    assert reply.startswith("Tester here. You wrote: “Can you look at acme.com for me?”.")
    finished = await get_task(services, owner, task.task_id)
    assert (finished.status, struct_to_dict(finished.result)) == (task_pb2.TASK_STATUS_FINISHED, {"reply": reply})
    memory = await services.workspace.GetTaskMemory(
        workspace_pb2.GetTaskMemoryRequest(task_id=task.task_id), metadata=owner.md
    )
    assert (memory.summary_text, list(memory.key_takeaways)) == (f"Chat with Tester: {text}", [f"Asked: {text}"])


async def test_a_task_cancelled_mid_run_is_let_go_at_once_and_the_worker_goes_on(
    services: Services, owner: Owner, agent: str, run_worker: RunWorker
) -> None:
    chain = [step("s1", "message", text="one")] + [
        step(f"s{i}", "message", [f"s{i - 1}"], text=f"step {i}") for i in range(2, 7)
    ]
    long_skill = await create_skill(services, agent, *chain)
    short_skill = await create_skill(services, agent, step("hello", "message", text="next"))
    task = await create_task(services, owner, agent, skill_id=long_skill.id)
    async with run_worker(agents=[agent], concurrency=1, step_delay_s=0.2):

        async def spoke() -> bool:
            return "one" in said(await all_events(services, owner, task.task_id))

        await wait_for(spoke, "the first message")
        await services.runtime.CancelTask(runtime_pb2.CancelTaskRequest(task_id=task.task_id), metadata=owner.md)
        # With one slot, the next task runs only once the worker let go of the cancelled one.
        later = await create_task(services, owner, agent, skill_id=short_skill.id)
        await wait_status(services, owner, later.task_id, task_pb2.TASK_STATUS_FINISHED)
    events = await all_events(services, owner, task.task_id)
    # Nothing was written after the cancel: its status event is the task's last event.
    assert events[-1].metadata["status"] == "cancelled"
    assert said(events)[0] == "one" and "step 6" not in said(events)


async def test_a_token_the_runtime_refuses_stops_the_worker_with_status_2(
    settings: Settings, tokens: Tokens, agent: str, tmp_path: Path
) -> None:
    no_scope = tokens.signer.mint("service:nobody", kind="service", scopes=["ontology.read"], ttl_s=60)
    worker = Worker(
        settings.with_overrides(service_token=no_scope),
        Options(agents=(agent,), poll_s=0.05, heartbeat_file=tmp_path / "hb"),
    )
    assert await asyncio.wait_for(worker.run(), 10) == 2
    assert not (tmp_path / "hb").exists()


def test_nexus_worker_without_a_token_says_how_to_get_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.delenv("NEXUS_TOKEN", raising=False)
    with pytest.raises(SystemExit) as exited:
        nexus(["--data-dir", str(tmp_path), "worker"])
    assert exited.value.code == 2
    assert "nexus token mint --subject worker --scope runtime.worker --scope ontology.read" in capsys.readouterr().err
