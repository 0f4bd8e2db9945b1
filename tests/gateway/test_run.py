"""`nexus run`, `nexus tail`, `nexus answer` and `nexus cancel` against real services; the test
plays the worker through the runtime's worker RPCs (the reference worker is built separately)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import signal
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from nexus.client import NexusClient, demo
from nexus.client.render import command_list
from nexus.client.run import (
    EXIT_INTERRUPTED,
    EXIT_UNREACHABLE,
    EXIT_WAITING,
    Answers,
    Console,
    Invocation,
    answer,
    cancel,
    run,
    tail,
)
from nexus.kit import config
from nexus.kit.config import Settings
from nexus.runtime.v1 import runtime_pb2, task_pb2
from tests.gateway.conftest import Platform, Scan, Worker, extra_server
from tests.support import NEXUS_COMMAND, eventually


@contextlib.asynccontextmanager
async def signed_in_as_demo(platform: Platform, data_dir: Path) -> AsyncIterator[NexusClient]:
    """The gateway client of the demo account `nexus run` used with this data dir."""
    credentials, _ = demo.load_or_create(data_dir)
    async with NexusClient(platform.gateway.address) as client:
        await client.sign_in(credentials.email, credentials.password)
        yield client


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


async def strand(platform: Platform, settings: Settings, scan: Scan, worker: Worker) -> tuple[str, str]:
    """`nexus run` with no answer for the task's question: (task id, what it said on stderr)."""
    running, _, err = start(
        f"{scan.trigger} https://acme.com", platform, settings, Answers([], io.StringIO(), interactive=False)
    )
    claimed = await worker.next_claim(scan.agent_id)
    await worker.say(claimed, "Scanning https://acme.com")
    await worker.ask(claimed, "Anything?")
    assert await asyncio.wait_for(running, 20) == EXIT_WAITING, err.getvalue()
    return claimed.task.task_id, err.getvalue()


async def test_a_question_without_an_answer_left_exits_3_naming_the_task_and_the_commands_that_go_on(
    platform: Platform, settings: Settings, scan: Scan, worker: Worker, tmp_path: Path
) -> None:
    task_id, err = await strand(platform, settings.with_overrides(data_dir=tmp_path), scan, worker)
    assert err.splitlines() == [
        f"nexus run: task {task_id} waits for an answer, and this run has none left (no --answer, no more input)",
        f"  answer it:    nexus answer {task_id} 'your answer'",
        f"  or cancel it: nexus cancel {task_id}",
        f"  and watch it: nexus tail {task_id}",
    ]
    async with signed_in_as_demo(platform, tmp_path) as client:
        assert (await client.get_task(task_id)).status == task_pb2.TASK_STATUS_WAITING_INPUT


async def test_nexus_answer_and_nexus_tail_take_a_stranded_task_to_its_end(
    platform: Platform, settings: Settings, scan: Scan, worker: Worker, tmp_path: Path
) -> None:
    local = settings.with_overrides(data_dir=tmp_path)
    task_id, _ = await strand(platform, local, scan, worker)
    out, err = io.StringIO(), io.StringIO()
    console = Console(out, err, name="nexus answer")
    address = platform.gateway.address
    assert await answer(task_id, "pricing", address=address, settings=local, console=console) == 0, err.getvalue()
    answered_at = int(out.getvalue().split("--after ")[1].split()[0])
    assert out.getvalue().splitlines() == [
        f"answered task {task_id}; it is queued again",
        f"  watch it go on: nexus tail {task_id} --after {answered_at}",
    ]
    resumed = await worker.next_claim(scan.agent_id)
    await worker.say(resumed, "Report written.")
    await worker.finish(resumed, pages=3)

    async def tail_output(after_seq: int) -> list[str]:
        out, err = io.StringIO(), io.StringIO()
        code = await tail(
            task_id, address=address, settings=local, console=Console(out, err, "nexus tail"), after_seq=after_seq
        )
        assert code == 0, err.getvalue()
        return out.getvalue().splitlines()

    whole, after = await tail_output(0), await tail_output(answered_at)
    assert whole[0] == after[0] == f"task {task_id} · Scan a site · https://acme.com"
    for line in ("agent: Scanning https://acme.com", "agent: Anything?", "you: pricing", "agent: Report written."):
        assert line in whole
    assert whole[-2:] == ["· the task finished", 'result: {"pages": 3}']
    # After the answer: only what happened since, rendered the same way.
    assert after[1:] == whole[-len(after) + 1 :]
    assert "you: pricing" not in after and "agent: Report written." in after


async def test_nexus_tail_shows_how_to_answer_a_question_still_open(
    platform: Platform, settings: Settings, scan: Scan, worker: Worker, tmp_path: Path
) -> None:
    local = settings.with_overrides(data_dir=tmp_path)
    task_id, _ = await strand(platform, local, scan, worker)
    out, err = io.StringIO(), io.StringIO()
    watching = asyncio.ensure_future(
        tail(task_id, address=platform.gateway.address, settings=local, console=Console(out, err, "nexus tail"))
    )
    hint = f"  answer it: nexus answer {task_id} 'your answer'"
    for _ in range(500):
        if hint in out.getvalue().splitlines():
            break
        await asyncio.sleep(0.02)
    assert out.getvalue().splitlines()[-2:] == ["· waiting for the owner's input", hint]
    async with signed_in_as_demo(platform, tmp_path) as client:
        await client.cancel_task(task_id)
    assert await asyncio.wait_for(watching, 20) == 1
    assert err.getvalue().strip() == "nexus tail: the task ended cancelled"


async def test_nexus_cancel_cancels_a_task_and_answering_an_ended_task_says_it_ended(
    platform: Platform, settings: Settings, scan: Scan, worker: Worker, tmp_path: Path
) -> None:
    local = settings.with_overrides(data_dir=tmp_path)
    task_id, _ = await strand(platform, local, scan, worker)
    address = platform.gateway.address
    for _ in range(2):  # cancelling again changes nothing
        out, err = io.StringIO(), io.StringIO()
        assert await cancel(task_id, address=address, settings=local, console=Console(out, err, "nexus cancel")) == 0
        assert out.getvalue() == f"task {task_id} is cancelled\n"
    out, err = io.StringIO(), io.StringIO()
    code = await answer(task_id, "late", address=address, settings=local, console=Console(out, err, "nexus answer"))
    assert code == 1 and out.getvalue() == ""
    assert err.getvalue() == "nexus answer: the task has already ended (cancelled)\n"


async def test_tail_answer_and_cancel_of_a_missing_or_malformed_task_exit_1_and_2(
    platform: Platform, settings: Settings, tmp_path: Path
) -> None:
    local = settings.with_overrides(data_dir=tmp_path)
    address = platform.gateway.address
    for task_id, code in ((str(uuid.uuid4()), 1), ("not-a-task", 2)):
        for command in (
            tail(task_id, address=address, settings=local, console=Console(io.StringIO(), io.StringIO())),
            answer(task_id, "x", address=address, settings=local, console=Console(io.StringIO(), io.StringIO())),
            cancel(task_id, address=address, settings=local, console=Console(io.StringIO(), io.StringIO())),
        ):
            assert await command == code


async def test_an_unknown_command_is_named_and_the_commands_there_are_are_listed(
    platform: Platform, settings: Settings, scan: Scan, tmp_path: Path
) -> None:
    local = settings.with_overrides(data_dir=tmp_path)
    running, out, err = start("/nope https://acme.com", platform, local, Answers([], io.StringIO()))
    assert await asyncio.wait_for(running, 20) == 2
    lines = err.getvalue().splitlines()
    assert lines[:2] == ["nexus run: /nope is not a command", "the commands you can run:"]
    async with signed_in_as_demo(platform, tmp_path) as client:
        commands = await client.complete_command("", page_size=100)
    assert lines[2 : 2 + len(commands)] == command_list(commands)
    assert out.getvalue() == ""


async def test_a_command_without_its_inputs_shows_its_usage_and_each_problem_once(
    platform: Platform, settings: Settings, scan: Scan, tmp_path: Path
) -> None:
    local = settings.with_overrides(data_dir=tmp_path)
    running, _, err = start(scan.trigger, platform, local, Answers([], io.StringIO()))
    assert await asyncio.wait_for(running, 20) == 2
    assert err.getvalue().splitlines() == [
        "nexus run: the command's inputs are not valid: inputs.url",
        "  inputs.url: is required",
        f"usage: {scan.trigger} <url> [depth=quick|deep]",
        "  url    url, required",
        "  depth  quick|deep, default quick: how deep",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "the request has invalid fields: text: is required"), ("scan it", "text: must start with a /trigger")],
)
async def test_an_error_is_said_once(
    platform: Platform, settings: Settings, tmp_path: Path, text: str, message: str
) -> None:
    local = settings.with_overrides(data_dir=tmp_path)
    running, _, err = start(text, platform, local, Answers([], io.StringIO()))
    assert await asyncio.wait_for(running, 20) == 2
    lines = err.getvalue().splitlines()
    assert lines[0] == f"nexus run: {message}"
    assert not any(message.endswith(line.strip()) for line in lines[1:]), lines


async def test_a_gateway_that_goes_away_mid_run_is_said_with_the_task_and_how_to_resume(
    platform: Platform, settings: Settings, scan: Scan, worker: Worker, tmp_path: Path
) -> None:
    local = settings.with_overrides(data_dir=tmp_path)
    out, err = io.StringIO(), io.StringIO()
    async with extra_server("gateway", settings) as gateway:
        running = asyncio.ensure_future(
            run(
                f"{scan.trigger} https://acme.com",
                address=gateway.address,
                settings=local,
                answers=Answers([], io.StringIO()),
                console=Console(out, err),
                invocation=Invocation(gateway=gateway.address),
                reconnect_timeout_s=0.5,
            )
        )
        claimed = await worker.next_claim(scan.agent_id)
        await worker.say(claimed, "Scanning https://acme.com")
        for _ in range(500):
            if "agent: Scanning https://acme.com" in out.getvalue():
                break
            await asyncio.sleep(0.02)
    # The gateway has stopped (and stays gone): the run gives up after its reconnect window.
    assert await asyncio.wait_for(running, 20) == EXIT_UNREACHABLE
    async with signed_in_as_demo(platform, tmp_path) as client:
        last_seen = (await client.get_task(claimed.task.task_id)).last_seq
    task_id = claimed.task.task_id
    assert err.getvalue().splitlines() == [
        f"nexus run: the gateway at {gateway.address} stopped answering, so this stops watching task {task_id}",
        f"  the task goes on; watch it again with: nexus tail --gateway {gateway.address} {task_id} "
        f"--after {last_seen}",
    ]


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
    assert code == EXIT_UNREACHABLE and "cannot reach the gateway" in err.getvalue()


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
    running, out, err = start(f"{scan.trigger} https://acme.com", platform, local, Answers([], io.StringIO()))
    await started(out)
    task_id = out.getvalue().split()[1]
    running.cancel()  # what Ctrl-C does to `asyncio.run`'s main task
    with pytest.raises(asyncio.CancelledError):
        await running
    assert err.getvalue() == f"nexus run: interrupted; task {task_id} is cancelled\n"
    async with signed_in_as_demo(platform, tmp_path) as client:
        assert (await client.get_task(task_id)).status == task_pb2.TASK_STATUS_CANCELLED


async def test_ctrl_c_at_the_answer_prompt_exits_130_at_once_and_cancels_the_task(
    platform: Platform, settings: Settings, scan: Scan, worker: Worker, tmp_path: Path
) -> None:
    """The real process, its standard input a terminal: it prompts, and SIGINT (what Ctrl-C sends)
    ends it with 130 while the prompt still waits for a line."""
    env = {**os.environ, **config.to_env(settings.with_overrides(data_dir=tmp_path))}
    terminal, tty = os.openpty()
    try:
        process = await asyncio.create_subprocess_exec(
            *NEXUS_COMMAND,
            "run",
            f"{scan.trigger} https://acme.com",
            "--gateway",
            platform.gateway.address,
            env=env,
            stdin=tty,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        claimed = await worker.next_claim(scan.agent_id, within_s=30)
        await worker.ask(claimed, "What should I focus on?")
        assert process.stdout is not None
        seen = await asyncio.wait_for(process.stdout.readuntil(b"answer> "), 30)
        assert b"agent: What should I focus on?" in seen
        process.send_signal(signal.SIGINT)
        _, stderr = await asyncio.wait_for(process.communicate(), 20)
    finally:
        os.close(tty)
        os.close(terminal)
    task_id = claimed.task.task_id
    assert process.returncode == EXIT_INTERRUPTED, stderr.decode()
    assert stderr.decode() == f"nexus run: interrupted; task {task_id} is cancelled\n"
    async with signed_in_as_demo(platform, tmp_path) as client:
        assert (await client.get_task(task_id)).status == task_pb2.TASK_STATUS_CANCELLED


def test_the_help_of_run_and_tail_documents_every_exit_status_they_use(capsys: pytest.CaptureFixture[str]) -> None:
    from launch.cli import build_parser
    from nexus.client import run as task_commands

    def documented(command: str) -> set[int]:
        with pytest.raises(SystemExit):
            build_parser().parse_args([command, "--help"])
        statuses = capsys.readouterr().out.split("exit status:")[1]
        return {
            int(line.split()[0]) for line in statuses.splitlines() if line.split()[:1] and line.split()[0].isdigit()
        }

    codes = {value for key, value in vars(task_commands).items() if key.startswith("EXIT_")}
    assert documented("run") == codes
    assert documented("tail") == codes - {task_commands.EXIT_WAITING}
