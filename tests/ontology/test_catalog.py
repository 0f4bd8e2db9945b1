"""The seed catalog: its steps follow the worker's vocabulary (catalog/ACTIONS.md), it loads
idempotently with `nexus catalog load`, and what it defines resolves through the service."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import psycopg
import pytest

from launch.registry import ONTOLOGY
from nexus.contract import actions
from nexus.kit import migrations, postgres
from nexus.kit.config import Settings
from nexus.kit.validation import struct_to_dict
from nexus.ontology.v1 import ontology_pb2 as pb
from services.ontology import catalog
from tests.ontology.conftest import Ontology
from tests.support import NEXUS_COMMAND

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = catalog.parse_file(catalog.DEFAULT_FILE)


def test_every_catalog_step_uses_a_known_action_with_its_required_args() -> None:
    problems = [p for s in SHIPPED.skills for step in s.definition.steps for p in actions.step_problems(step)]
    assert problems == []
    used = {step.action for s in SHIPPED.skills for step in s.definition.steps}
    assert used <= set(actions.ACTIONS)


def test_every_catalog_template_names_a_declared_input_or_an_earlier_variable() -> None:
    assert [
        p
        for s in SHIPPED.skills
        for p in actions.template_problems({i.name for i in s.definition.inputs}, s.definition.steps)
    ] == []


def test_the_vocabulary_is_documented_next_to_the_catalog() -> None:
    doc = (ROOT / "catalog" / "ACTIONS.md").read_text()
    for name, action in actions.ACTIONS.items():
        assert f"| `{name}` |" in doc
        for arg in action.required | action.optional:
            assert f"`{arg}" in doc, (name, arg)


def test_the_catalog_holds_the_research_writer_and_assistant_agents_and_a_team() -> None:
    commands = {c.trigger: c for c in SHIPPED.commands}
    assert set(commands) == {"/scan", "/summarize", "/ask"}
    skills = {s.id: s for s in SHIPPED.skills}
    scan = skills[commands["/scan"].target_skill_id]
    assert [i.name for i in scan.definition.inputs] == ["url", "depth"]
    assert {"ask_user", "render", "write_artifact", "write_memory"} <= {s.action for s in scan.definition.steps}
    assert len(SHIPPED.teams) == 1 and len(SHIPPED.teams[0].participants) == 3


BROKEN = """
[[agents]]
id = "a1"
name = "A"

[[skills]]
id = "s1"
agent = "a1"
name = "S"
[[skills.definition.inputs]]
name = "x"
type = "color"
[[skills.definition.steps]]
id = "one"
action = "launch_rocket"
depends_on = ["two"]
[[skills.definition.steps]]
id = "two"
action = "message"
depends_on = ["one"]
args = { text = "{{ inputs.y }}" }

[[commands]]
trigger = "/go"
agent = "a1"
skill = "elsewhere"
"""


def test_a_broken_catalog_is_refused_listing_every_problem() -> None:
    with pytest.raises(catalog.CatalogError) as raised:
        catalog.parse(BROKEN, "broken.toml")
    text = "\n".join(raised.value.problems)
    assert "skills[0].definition.inputs[0].type: must be one of boolean, enum, integer, json" in text
    assert "unknown action 'launch_rocket'" in text
    assert "template names unknown input 'y'" in text
    assert "skill 'elsewhere' is not a catalog skill of its agent" in text
    assert "forms a cycle: one → two → one" in text


@pytest.fixture
def migrated(scratch_settings: Settings) -> Settings:
    migrations.upgrade(scratch_settings, ONTOLOGY)
    return scratch_settings


def _rows(settings: Settings) -> dict[str, list[tuple[object, ...]]]:
    url = postgres.service_url(settings, "ontology", driver="postgresql")
    with psycopg.connect(url) as conn:
        return {
            table: conn.execute(f"SELECT * FROM ontology.{table} ORDER BY 1, 2").fetchall()
            for table in ("agent", "skill", "command", "team", "team_participant")
        }


async def test_loading_twice_changes_nothing_and_a_changed_file_updates_its_rows(
    migrated: Settings, tmp_path: Path
) -> None:
    first = await catalog.load(migrated)
    assert (first.agents, first.skills, first.commands, first.teams) == (3, 3, 3, 1)
    before = _rows(migrated)
    assert (await catalog.load(migrated)).total == 0
    assert _rows(migrated) == before  # not even a timestamp moved

    changed = (
        catalog.DEFAULT_FILE.read_text()
        .replace('description = "Answers a quick question and remembers it."', 'description = "Answers questions."')
        .replace('role = "coordinator"', 'role = "dispatcher"')
    )
    edited = tmp_path / "catalog.toml"
    edited.write_text(changed)
    second = await catalog.load(migrated, edited)
    assert (second.agents, second.skills, second.commands, second.teams) == (0, 1, 0, 1)
    after = _rows(migrated)
    assert [r[0] for r in after["skill"] if r not in before["skill"]] == ["answer_question"]
    assert "dispatcher" in {r[3] for r in after["team_participant"]}
    assert after["agent"] != before["agent"]  # the assistant's snapshot follows its skill


def test_nexus_catalog_load_runs_from_the_command_line(migrated: Settings) -> None:
    env = {
        **os.environ,
        "NEXUS_DATABASE_URL": postgres.admin_url(migrated),
        "NEXUS_DATABASE_NAME": migrated.database_name,
        "NEXUS_DB_ROLE_PREFIX": migrated.db_role_prefix,
        "NEXUS_DATA_DIR": str(migrated.data_dir),
    }
    run = [*NEXUS_COMMAND, "catalog", "load"]
    first = subprocess.run(run, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "3 agents, 3 skills, 3 commands, 1 teams created or updated" in first.stdout
    again = subprocess.run(run, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert again.stdout.strip() == "catalog: up to date"


@pytest.fixture(scope="module")
async def loaded(settings: Settings) -> None:
    await catalog.load(settings)


@pytest.mark.usefixtures("loaded")
async def test_catalog_commands_resolve_through_the_service(ontology: Ontology) -> None:
    md = ontology.user().md
    scan = await ontology.stub.ResolveCommand(
        pb.ResolveCommandRequest(text="/scan https://acme.com depth=deep"), metadata=md
    )
    assert (scan.command.agent_id, scan.skill.id) == ("web_researcher_v1", "scan_website")
    assert struct_to_dict(scan.inputs) == {"url": "https://acme.com", "depth": "deep"}
    ask = await ontology.stub.ResolveCommand(pb.ResolveCommandRequest(text="/ask what is a monad?"), metadata=md)
    assert struct_to_dict(ask.inputs) == {"question": "what is a monad?"}
    summary = await ontology.stub.ResolveCommand(
        pb.ResolveCommandRequest(text="/summarize Long text here style=tldr"), metadata=md
    )
    assert struct_to_dict(summary.inputs) == {"text": "Long text here", "style": "tldr"}
    agent = await ontology.stub.GetAgent(pb.GetAgentRequest(agent_id="web_researcher_v1"), metadata=md)
    assert [c.trigger for c in agent.capabilities_snapshot.commands] == ["/scan"]
    assert [s.id for s in agent.capabilities_snapshot.skills] == ["scan_website"]
