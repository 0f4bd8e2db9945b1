"""The agents the reference worker works for.

By default, the seed catalog's agents (`catalog/catalog.toml`, shipped as data beside the code)
whose every catalog skill uses only the actions the worker executes (`nexus.contract.actions`):
those are the agents it implements. Any other agent belongs to a worker of its own, so a task for
it is never claimed here. `--agent` / `NEXUS_WORKER_AGENTS` choose another list.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from catalog import CATALOG_FILE
from nexus.contract.actions import ACTIONS
from nexus.kit.config import ConfigError


def catalog_agents(path: Path = CATALOG_FILE) -> tuple[str, ...]:
    """The catalog's agents whose skills the reference worker can run, in catalog order."""
    try:
        catalog: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"cannot read the catalog {path} for the worker's agents: {err}") from None
    agents = [str(agent.get("id", "")) for agent in catalog.get("agents", []) if isinstance(agent, dict)]
    foreign: set[str] = set()
    for skill in catalog.get("skills", []):
        if not isinstance(skill, dict):
            continue
        steps = skill.get("definition", {}).get("steps", [])
        if any(not isinstance(step, dict) or step.get("action") not in ACTIONS for step in steps):
            foreign.add(str(skill.get("agent", "")))
    return tuple(agent for agent in agents if agent and agent not in foreign)
