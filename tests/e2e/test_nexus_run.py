"""`nexus run` as a real process against the platform with the reference worker: a /scan that
asks a question runs to the end with `--answer` (exit 0); without an answer it stops (exit 3) with
the commands that take it on, `nexus answer` and `nexus tail`; a task that fails exits 1 and says
why."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable
from pathlib import Path

import grpc

from nexus.kit import config
from nexus.kit.config import Settings
from nexus.kit.validation import dict_to_struct
from nexus.ontology.v1 import ontology_pb2 as onto
from nexus.ontology.v1 import ontology_pb2_grpc as onto_grpc
from tests.e2e.conftest import SCAN_AGENT, Platform, Serving
from tests.support import NEXUS_COMMAND, Tokens


async def nexus_run(platform: Platform, settings: Settings, data_dir: Path, *args: str) -> tuple[int, str, str]:
    """`nexus --data-dir D run …` with nothing on standard input; (exit status, stdout, stderr)."""
    return await nexus(platform, settings, data_dir, "run", *args)


async def nexus(
    platform: Platform, settings: Settings, data_dir: Path, command: str, *args: str
) -> tuple[int, str, str]:
    """`nexus --data-dir D <command> … --gateway G`; (exit status, stdout, stderr)."""
    env = {**os.environ, **config.to_env(settings.with_overrides(data_dir=data_dir))}
    process = await asyncio.create_subprocess_exec(
        *NEXUS_COMMAND,
        "--data-dir",
        str(data_dir),
        command,
        *args,
        "--gateway",
        platform.gateway.address,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def test_nexus_run_scans_a_site_answers_with_the_flag_and_exits_0(
    platform: Platform, settings: Settings, serving: Serving, tmp_path: Path
) -> None:
    async with serving(SCAN_AGENT):
        code, out, err = await nexus_run(
            platform, settings, tmp_path, "/scan https://example.com", "--answer", "pricing"
        )
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("task ") and lines[0].endswith("· Scan a website · https://example.com")
    for expected in (
        "agent: Scanning https://example.com (standard scan).",
        "⧉ web_preview → canvas (url=https://example.com)",
        "agent: What should the scan of https://example.com focus on? For example pricing, product, team or hiring.",
        "you: pricing",
        "agent: Done. The scan report of https://example.com is in your artifacts.",
        "· the task finished",
    ):
        assert expected in lines, out
    assert lines.index("you: pricing") < lines.index("· the task finished")
    # The result's keys come back from JSONB in its own order.
    assert lines[-1].startswith("result: {")
    assert '"summary": "Scanned https://example.com (standard) with a focus on pricing."' in lines[-1]


async def test_a_scan_left_without_an_answer_is_answered_with_nexus_answer_and_watched_with_nexus_tail(
    platform: Platform, settings: Settings, serving: Serving, tmp_path: Path
) -> None:
    async with serving(SCAN_AGENT):
        code, out, err = await nexus_run(platform, settings, tmp_path, "/scan https://example.com")
        assert code == 3, err
        task_id = out.splitlines()[0].split()[1]
        gateway = platform.gateway.address
        answer_it = f"nexus --data-dir {tmp_path} answer --gateway {gateway} {task_id} 'your answer'"
        assert f"  answer it:    {answer_it}" in err.splitlines()
        code, out, err = await nexus(platform, settings, tmp_path, "answer", task_id, "pricing")
        assert code == 0, err
        code, out, err = await nexus(platform, settings, tmp_path, "tail", task_id)
    assert code == 0, err
    lines = out.splitlines()
    assert lines.index("you: pricing") < lines.index("· the task finished") == len(lines) - 2
    assert '"summary": "Scanned https://example.com (standard) with a focus on pricing."' in lines[-1]


async def test_nexus_run_exits_1_with_the_tasks_error_when_it_fails(
    platform: Platform,
    settings: Settings,
    serving: Serving,
    tokens: Tokens,
    tmp_path: Path,
    open_channel: Callable[[str], grpc.aio.Channel],
) -> None:
    """A command whose skill names an action the worker does not know."""
    admin = tokens.service("ontology.admin", name="e2e")
    ontology = onto_grpc.OntologyServiceStub(open_channel(platform.ontology.address))
    agent_id, skill_id = f"agent-{uuid.uuid4().hex[:8]}", f"skill-{uuid.uuid4().hex[:8]}"
    trigger = f"/warp{uuid.uuid4().hex[:6]}"
    await ontology.CreateAgent(
        onto.CreateAgentRequest(agent_id=agent_id, agent=onto.Agent(name="Warp")), metadata=admin
    )
    steps = [
        onto.Step(id="hello", action="message", args=dict_to_struct({"text": "Warming up"})),
        onto.Step(id="warp", action="teleport", depends_on=["hello"], args=dict_to_struct({"to": "mars"})),
    ]
    skill = onto.Skill(agent_id=agent_id, name="Warp", definition=onto.SkillDefinition(steps=steps))
    await ontology.CreateSkill(onto.CreateSkillRequest(skill=skill, skill_id=skill_id), metadata=admin)
    command = onto.Command(trigger=trigger, agent_id=agent_id, target_skill_id=skill_id)
    await ontology.CreateCommand(onto.CreateCommandRequest(command=command), metadata=admin)
    async with serving(agent_id):
        code, out, err = await nexus_run(platform, settings, tmp_path, trigger)
    assert code == 1, out
    assert "agent: Warming up" in out.splitlines()
    assert err.strip().startswith(
        "nexus run: the task failed: UNKNOWN_ACTION: step 'warp' (teleport): unknown action 'teleport'"
    )
