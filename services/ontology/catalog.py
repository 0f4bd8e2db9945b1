"""The seed catalog: a declarative TOML file of system agents, skills, commands and teams.

Each entry goes through the same validation as the API (it is turned into the request proto and
read with `convert`), and its steps must use the reference worker's vocabulary
(`nexus.contract.actions`). Loading writes through the store in one transaction, with the ontology
role's own database connection, so no server is needed.
"""

from __future__ import annotations

import tomllib
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import json_format

from catalog import CATALOG_FILE
from nexus.contract import actions
from nexus.kit.config import Settings
from nexus.kit.db import Database
from nexus.kit.validation import Violations
from nexus.ontology.v1 import ontology_pb2 as pb
from services.ontology import convert
from services.ontology.domain import ids
from services.ontology.domain.access import ADMIN_SCOPE, Viewer
from services.ontology.domain.inputs import InputType
from services.ontology.domain.models import Agent, Command, Skill, Team, TeamStatus
from services.ontology.store.catalog import CatalogChanges, CatalogStore

DEFAULT_FILE = CATALOG_FILE
_LOADER = Viewer(subject="service:catalog", user_id=None, scopes=frozenset({ADMIN_SCOPE}))


class CatalogError(Exception):
    """The catalog file is not valid; `problems` lists every problem, one per line."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        super().__init__(f"{source}: " + "; ".join(problems))
        self.problems = list(problems)


@dataclass(frozen=True)
class Catalog:
    agents: tuple[Agent, ...]
    skills: tuple[Skill, ...]
    commands: tuple[Command, ...]
    teams: tuple[Team, ...]


def _renamed(entry: Mapping[str, Any], renames: Mapping[str, str], drop: Sequence[str] = ()) -> dict[str, Any]:
    return {renames.get(k, k): v for k, v in entry.items() if k not in drop}


def _enum(out: dict[str, Any], key: str, prefix: str, names: Collection[str], path: str, problems: list[str]) -> None:
    """Short enum names (`url`, `active`) to proto names; an unknown one is reported here and
    left unspecified, so the rest of the entry is still checked."""
    value = out.get(key)
    if value is None:
        return
    if value not in names:
        problems.append(f"{path}.{key}: must be one of {', '.join(sorted(names))}")
        out[key] = 0
    else:
        out[key] = f"{prefix}{value.upper()}"


def _input(entry: Mapping[str, Any], path: str, problems: list[str]) -> dict[str, Any]:
    out = _renamed(entry, {"default": "default_value"})
    _enum(out, "type", "INPUT_TYPE_", [t.value for t in InputType], path, problems)
    return out


def _proto(entry: Any, message: Any, path: str, problems: list[str]) -> Any:
    try:
        return json_format.ParseDict(entry, message)
    except (json_format.ParseError, TypeError, ValueError) as err:
        problems.append(f"{path}: {err}")
        return None


def _entries(data: Mapping[str, Any], key: str, problems: list[str]) -> list[Mapping[str, Any]]:
    entries = data.get(key, [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        problems.append(f"{key}: must be an array of tables ([[{key}]])")
        return []
    return entries


def parse(text: str, source: str = "catalog") -> Catalog:
    """A validated catalog; raises CatalogError listing every problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise CatalogError(source, [f"not valid TOML: {err}"]) from None
    problems: list[str] = []
    unknown = set(data) - {"agents", "skills", "commands", "teams"}
    problems += [f"unknown section {name!r}" for name in sorted(unknown)]
    v = Violations()

    agents = []
    for i, entry in enumerate(_entries(data, "agents", problems)):
        path = f"agents[{i}]"
        msg = _proto(_renamed(entry, {}, drop=["id"]), pb.Agent(), path, problems)
        v.slug(f"{path}.id", str(entry.get("id", "")))
        if msg is not None:
            agents.append(convert.agent_in(v, msg, str(entry.get("id", "")), convert.AGENT_PATHS, prefix=path))

    skills = []
    for i, entry in enumerate(_entries(data, "skills", problems)):
        path = f"skills[{i}]"
        raw = _renamed(entry, {"agent": "agent_id"}, drop=["id"])
        definition = raw.get("definition", {})
        if isinstance(definition, dict):
            inputs = definition.get("inputs", [])
            raw["definition"] = {
                **definition,
                "inputs": [_input(x, f"{path}.definition.inputs[{j}]", problems) for j, x in enumerate(inputs)],
            }
        msg = _proto(raw, pb.Skill(), path, problems)
        skill_id = convert.new_skill_id(v, _LOADER, str(entry.get("id", "")))
        if msg is not None:
            skill = convert.skill_in(v, msg, skill_id, (*convert.SKILL_PATHS, "agent_id"), prefix=path)
            skills.append(skill)
            problems += [
                f"{path}: {p}"
                for p in actions.template_problems({i.name for i in skill.definition.inputs}, skill.definition.steps)
            ]
            for step in skill.definition.steps:
                problems += [f"{path}: {p}" for p in actions.step_problems(step)]

    commands = []
    for i, entry in enumerate(_entries(data, "commands", problems)):
        path = f"commands[{i}]"
        msg = _proto(_renamed(entry, {"agent": "agent_id", "skill": "target_skill_id"}), pb.Command(), path, problems)
        if msg is not None:
            convert.new_trigger(v, f"{path}.trigger", msg.trigger)
            commands.append(convert.command_in(v, msg, convert.COMMAND_PATHS, prefix=path))

    teams = []
    for i, entry in enumerate(_entries(data, "teams", problems)):
        path = f"teams[{i}]"
        key = str(entry.get("key", ""))
        raw = _renamed(entry, {}, drop=["key"])
        _enum(raw, "status", "TEAM_STATUS_", [t.value for t in TeamStatus], path, problems)
        raw["participants"] = [_renamed(p, {"agent": "agent_id"}) for p in raw.get("participants", [])]
        msg = _proto(raw, pb.Team(), path, problems)
        v.slug(f"{path}.key", key)
        if msg is not None:
            teams.append(
                convert.team_in(v, msg, ids.catalog_team_id(key), convert.TEAM_PATHS, creating=True, prefix=path)
            )

    problems += [f"{item.field}: {item.description}" for item in v.items]
    problems += _references(agents, skills, commands, teams)
    problems += _duplicates("agents", [a.id for a in agents])
    problems += _duplicates("skills", [s.id for s in skills])
    problems += _duplicates("commands", [c.trigger for c in commands])
    problems += _duplicates("teams", [t.id for t in teams])
    if problems:
        raise CatalogError(source, problems)
    return Catalog(tuple(agents), tuple(skills), tuple(commands), tuple(teams))


def _references(
    agents: Sequence[Agent], skills: Sequence[Skill], commands: Sequence[Command], teams: Sequence[Team]
) -> list[str]:
    """The catalog is self-contained: everything it names is defined in it."""
    agent_ids = {a.id for a in agents}
    skill_agents = {s.id: s.agent_id for s in skills}
    problems = [
        f"skill {s.id!r}: agent {s.agent_id!r} is not in the catalog" for s in skills if s.agent_id not in agent_ids
    ]
    for c in commands:
        if c.agent_id not in agent_ids:
            problems.append(f"command {c.trigger!r}: agent {c.agent_id!r} is not in the catalog")
        if skill_agents.get(c.target_skill_id) != c.agent_id:
            problems.append(f"command {c.trigger!r}: skill {c.target_skill_id!r} is not a catalog skill of its agent")
    for t in teams:
        problems += [
            f"team {t.name!r}: agent {p.agent_id!r} is not in the catalog"
            for p in t.participants
            if p.agent_id not in agent_ids
        ]
    return problems


def _duplicates(kind: str, keys: Sequence[str]) -> list[str]:
    return [f"{kind}: {key!r} is defined more than once" for key, n in sorted(Counter(keys).items()) if n > 1]


def parse_file(path: Path) -> Catalog:
    return parse(path.read_text(encoding="utf-8"), str(path))


async def load(settings: Settings, path: Path | None = None) -> CatalogChanges:
    """Loads the catalog into the database (idempotent); returns what changed."""
    catalog = parse_file(path or DEFAULT_FILE)
    db = Database.for_service(settings, "ontology", pool_size=1)
    try:
        return await CatalogStore(db).apply(catalog.agents, catalog.skills, catalog.commands, catalog.teams)
    finally:
        await db.close()


def describe(changes: CatalogChanges) -> str:
    if not changes.total:
        return "up to date"
    parts = [
        f"{n} {kind}"
        for kind, n in (
            ("agents", changes.agents),
            ("skills", changes.skills),
            ("commands", changes.commands),
            ("teams", changes.teams),
        )
        if n
    ]
    return ", ".join(parts) + " created or updated"
