"""The step actions the reference worker executes, and the template syntax of their args: the
contract between skills and the worker.

`catalog/ACTIONS.md` documents the same vocabulary for people. Skill validation does not restrict
actions (the worker fails an unknown one at run time); the catalog is held to this list by a test
and by the loader, so everything shipped in the repository runs.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from nexus.contract.steps import SkillStep
from nexus.kit.validation import JSON


@dataclass(frozen=True)
class Action:
    name: str
    required: frozenset[str]
    optional: frozenset[str] = frozenset()
    # Args that must be strings (templates); the others may be any JSON.
    strings: frozenset[str] = frozenset()


ACTIONS: Mapping[str, Action] = {
    a.name: a
    for a in (
        Action("message", frozenset({"text"}), strings=frozenset({"text"})),
        Action(
            "render",
            frozenset({"target_zone", "component"}),
            frozenset({"props"}),
            strings=frozenset({"target_zone", "component"}),
        ),
        Action("set_variable", frozenset({"name", "value"}), strings=frozenset({"name"})),
        Action("ask_user", frozenset({"question", "variable"}), strings=frozenset({"question", "variable"})),
        Action(
            "write_artifact",
            frozenset({"display_name", "type", "content"}),
            strings=frozenset({"display_name", "type", "content"}),
        ),
        Action("write_memory", frozenset(), frozenset({"summary", "takeaways"}), strings=frozenset({"summary"})),
    )
}

# `{{ inputs.url }}`, `{{ vars.focus }}`
TEMPLATE = re.compile(r"\{\{\s*([a-z]+)\.([A-Za-z0-9_]+)\s*\}\}")


def step_problems(step: SkillStep) -> list[str]:
    """Why a step does not follow the worker's vocabulary (empty when it does)."""
    action = ACTIONS.get(step.action)
    if action is None:
        return [f"step {step.id!r}: unknown action {step.action!r}"]
    problems = [f"step {step.id!r}: missing arg {name!r}" for name in sorted(action.required - step.args.keys())]
    unknown = step.args.keys() - action.required - action.optional
    problems += [f"step {step.id!r}: unexpected arg {name!r}" for name in sorted(unknown)]
    for name in sorted(action.strings & step.args.keys()):
        value = step.args[name]
        if not isinstance(value, str) or not value.strip():
            problems.append(f"step {step.id!r}: arg {name!r} must be a non-empty string")
    if step.action == "write_memory":
        takeaways = step.args.get("takeaways", [])
        if not isinstance(takeaways, list) or not all(isinstance(t, str) for t in takeaways):
            problems.append(f"step {step.id!r}: arg 'takeaways' must be a list of strings")
    if step.action == "render" and not isinstance(step.args.get("props", {}), dict):
        problems.append(f"step {step.id!r}: arg 'props' must be an object")
    return problems


def _strings(value: JSON) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    return []


def template_problems(inputs: Collection[str], steps: Sequence[SkillStep]) -> list[str]:
    """Templates that name an undeclared input, a variable no earlier step can have set, or an
    unknown namespace."""
    by_id = {s.id: s for s in steps}
    problems = []
    for step in steps:
        known_vars = {_sets(by_id[d]) for d in _ancestors(step, by_id)} - {None}
        for text in _strings(step.args):
            for space, name in TEMPLATE.findall(text):
                if space == "inputs" and name not in inputs:
                    problems.append(f"step {step.id!r}: template names unknown input {name!r}")
                elif space == "vars" and name not in known_vars:
                    problems.append(f"step {step.id!r}: template reads variable {name!r} before any step sets it")
                elif space not in ("inputs", "vars"):
                    problems.append(f"step {step.id!r}: template namespace {space!r} is neither inputs nor vars")
    return problems


def _sets(step: SkillStep) -> str | None:
    """The variable a step sets, if any."""
    key = {"set_variable": "name", "ask_user": "variable"}.get(step.action)
    value = step.args.get(key) if key else None
    return value if isinstance(value, str) else None


def _ancestors(step: SkillStep, by_id: Mapping[str, SkillStep]) -> set[str]:
    seen: set[str] = set()
    todo = list(step.depends_on)
    while todo:
        current = todo.pop()
        if current in seen or current not in by_id:
            continue
        seen.add(current)
        todo.extend(by_id[current].depends_on)
    return seen
