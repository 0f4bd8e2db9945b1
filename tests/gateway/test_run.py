"""`nexus run` against real services; the test plays the worker through the runtime's worker RPCs
(the reference worker is built separately)."""

from __future__ import annotations

import asyncio
import io
import os
from pathlib import Path
from typing import Any

import pytest

from nexus.client import NexusClient, demo
from nexus.client.run import Answers, Console, run
from nexus.kit import config
from nexus.kit.config import Settings
from nexus.runtime.v1 import runtime_pb2, task_pb2
from tests.gateway.conftest import Platform, Scan, Worker
from tests.support import NEXUS_COMMAND, eventually


async def render_preview(worker: Worker, claimed: runtime_pb2.ClaimedTask) -> None:
    event = task_pb2.TaskEvent(role=task_pb2.EVENT_ROLE_ASSISTANT, type=task_pb2.EVENT_TYPE_NEXUS_RENDER)
    event.render_payload.update(
        {"target_zone": "canvas", "component": "web_preview", "props": {"url": "https://acme.com"}}
    )
    await worker.runtime.AppendTaskEvents(
        runtime_pb2.AppendTaskEventsRequest(
            task_id=claimed.task.task_id, events=[event], lease_id=claimed.lease.lease_id
        ),
        metadata=worker.md,
    )


async def started(out: io.StringIO) -> None:
    """Until `nexus run` printed its task: RunCommand has returned, so the plan is seeded. (A
    worker that claims a task before that finds no plan yet; see the gateway's README.)"""
    await eventually(out.getvalue, "nexus run to print its task")


async def play_scan(worker: Worker, scan: Scan, *, fail: bool = False) -> str:
    """Claim, talk, render, ask; after the answer claim again and finish (or fail)."""
    claimed = await worker.next_claim(scan.agent_id)
    await worker.step(claimed, "announce", "running")
    await worker.say(claimed, "Scanning https://acme.com")
    await render_preview(worker, claimed)
    await worker.step(claimed, "announce", "done")
    await worker.step(claimed, "ask", "running")
    await worker.ask(claimed, "What should I focus on?")
    resumed = await worker.next_claim(scan.agent_id)
    await worker.step(resumed, "ask", "done")
    if fail:
        await worker.step(resumed, "report", "failed")
        await worker.fail(resumed, "SITE_UNREACHABLE", "acme.com did not answer")
    else:
        await worker.step(resumed, "report", "running")
        await worker.say(resumed, "Report written.")
        await worker.step(resumed, "report", "done")
        await worker.finish(resumed, pages=3)
    return claimed.task.task_id


def start(text: str, platform: Platform, settings: Settings, answers: Answers) -> tuple[Any, io.StringIO, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    running = asyncio.ensure_future(
        run(text, address=platform.gateway.address, settings=settings, answers=answers, console=Console(out, err))
    )
    return running, out, err


async def test_nexus_run_shows_the_task_live_answers_its_question_and_exits_0(
    platform: Platform, settings: Settings, scan: Scan, worker: Worker, tmp_path: Path
) -> None:
    local = settings.with_overrides(data_dir=tmp_path)
    answers = Answers(["pricing"], io.StringIO(), interactive=False)
    running, out, err = start(f"{scan.trigger} https://acme.com", platform, local, answers)
    await started(out)
    task_id = await play_scan(worker, scan)
    assert await asyncio.wait_for(running, 20) == 0, err.getvalue()
    lines = out.getvalue().splitlines()
    assert lines[0] == f"task {task_id} · Scan a site · https://acme.com"
    assert lines[1:] == [
        "plan [···] 0/3 · Announce",
        "plan [▶··] 0/3 · Announce",
        "agent: Scanning https://acme.com",
        "⧉ web_preview → canvas (url=https://acme.com)",
        "plan [✓··] 1/3 · Ask",
        "plan [✓▶·] 1/3 · Ask",
        "agent: What should I focus on?",
        "· waiting for the owner's input",
        "you: pricing",
        "plan [✓✓·] 2/3 · Report",
        "plan [✓✓▶] 2/3 · Report",
        "agent: Report written.",
        "plan [✓✓✓] 3/3 · done",
        "· the task finished",
        'result: {"pages": 3}',
    ]
    # The demo account was created on first use, in a private file; the next run signs in with it.
    assert demo.path(tmp_path).stat().st_mode & 0o077 == 0


async def test_answers_come_from_standard_input_when_no_answer_flag_is_left(
    platform: Platform, settings: Settings, scan: Scan, worker: Worker, tmp_path: Path
) -> None:
    local = settings.with_overrides(data_dir=tmp_path)
    running, out, err = start(
        f"{scan.trigger} https://acme.com", platform, local, Answers([], io.StringIO("from stdin\n"), interactive=False)
    )
    await started(out)
    await play_scan(worker, scan, fail=True)
    assert await asyncio.wait_for(running, 20) == 1
    assert "you: from stdin" in out.getvalue().splitlines()
    assert err.getvalue().strip() == "nexus run: the task failed: SITE_UNREACHABLE: acme.com did not answer"


async def test_a_question_without_an_answer_left_exits_1_and_leaves_the_task_waiting(
    platform: Platform, settings: Settings, scan: Scan, worker: Worker, tmp_path: Path
) -> None:
    local = settings.with_overrides(data_dir=tmp_path)
    running, _, err = start(
        f"{scan.trigger} https://acme.com", platform, local, Answers([], io.StringIO(), interactive=False)
    )
    claimed = await worker.next_claim(scan.agent_id)
    await worker.ask(claimed, "Anything?")
    assert await asyncio.wait_for(running, 20) == 1
    assert "no answer is left" in err.getvalue()


async def test_a_command_that_does_not_resolve_exits_2_with_the_reasons(
    platform: Platform, settings: Settings, scan: Scan, tmp_path: Path
) -> None:
    local = settings.with_overrides(data_dir=tmp_path)
    running, out, err = start(f"{scan.trigger} not-a-url", platform, local, Answers([], io.StringIO()))
    assert await asyncio.wait_for(running, 20) == 2
    assert "  inputs.url: " in err.getvalue() and out.getvalue() == ""
    running, _, err = start(scan.trigger + "zz", platform, local, Answers([], io.StringIO()))
    assert await asyncio.wait_for(running, 20) == 2
    assert f"did you mean {scan.trigger}?" in err.getvalue()


async def test_an_unreachable_gateway_is_reported(settings: Settings, tmp_path: Path) -> None:
    from tests.conftest import free_port

    out, err = io.StringIO(), io.StringIO()
    code = await run(
        "/scan https://acme.com",
        address=f"127.0.0.1:{free_port()}",
        settings=settings.with_overrides(data_dir=tmp_path),
        answers=Answers([], io.StringIO()),
        console=Console(out, err),
    )
    assert code == 1 and "cannot reach the gateway" in err.getvalue()


async def test_the_nexus_run_command_line_runs_a_command_end_to_end(
    platform: Platform, settings: Settings, scan: Scan, worker: Worker, tmp_path: Path
) -> None:
    """The real `nexus run` process, answers from --answer and from its piped standard input."""
    env = {**os.environ, **config.to_env(settings.with_overrides(data_dir=tmp_path))}
    process = await asyncio.create_subprocess_exec(
        *NEXUS_COMMAND,
        "run",
        f"{scan.trigger} https://acme.com",
        "--gateway",
        platform.gateway.address,
        "--answer",
        "pricing",
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdin is not None
    process.stdin.close()
    assert process.stdout is not None
    first = await asyncio.wait_for(process.stdout.readline(), 30)
    assert first.startswith(b"task ")
    await play_scan(worker, scan)
    stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, stderr.decode()
    assert "you: pricing" in stdout.decode().splitlines()
    assert demo.path(tmp_path).exists()


async def test_an_interrupted_run_cancels_its_task(
    platform: Platform, settings: Settings, scan: Scan, tmp_path: Path
) -> None:
    local = settings.with_overrides(data_dir=tmp_path)
    running, out, _ = start(f"{scan.trigger} https://acme.com", platform, local, Answers([], io.StringIO()))
    await started(out)
    task_id = out.getvalue().split()[1]
    running.cancel()  # what Ctrl-C does to `asyncio.run`'s main task
    with pytest.raises(asyncio.CancelledError):
        await running
    credentials, _ = demo.load_or_create(tmp_path)
    async with NexusClient(platform.gateway.address) as client:
        await client.sign_in(credentials.email, credentials.password)
        assert (await client.get_task(task_id)).status == task_pb2.TASK_STATUS_CANCELLED
