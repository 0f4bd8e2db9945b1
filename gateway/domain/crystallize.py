"""Turning a finished task into a skill definition (CrystallizeSkill).

Steps: the task's plan steps, as they ran (action, args, dependencies). Plan step ids allow more
characters than skill step ids, so ids are mapped to skill form (`Fetch.Page:1` → `fetch_page_1`),
unique, with `depends_on` renamed to match.

Inputs: the task's origin skill's input definitions when the caller can still see that skill;
otherwise one input per task input whose name is a valid input name, typed from its value
(boolean, integer, number, url for an absolute http(s) URL, string, json). Every input the task
had a value for takes that value as its default and becomes optional, so the new command alone
repeats the task and arguments override it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from urllib.parse import urlsplit

from nexus.contract.steps import SkillStep
from nexus.kit.validation import JSON, json_to_value
from nexus.ontology.v1 import ontology_pb2 as onto

INPUT_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
_STEP_ID_CHARS = re.compile(r"[^a-z0-9_-]+")
MAX_STEP_ID = 64
MAX_STRING_DEFAULT = 8192
MAX_DESCRIPTION = 4000
MAX_COMMAND_DESCRIPTION = 1000
_MAX_SAFE_INTEGER = 2**53


def skill_step_ids(ids: Sequence[str]) -> dict[str, str]:
    """Plan step id → a unique skill step id (`[a-z][a-z0-9_-]{0,63}`)."""
    mapped: dict[str, str] = {}
    taken: set[str] = set()
    for original in ids:
        base = _STEP_ID_CHARS.sub("_", original.lower()).strip("_-") or "step"
        if not base[0].isalpha():
            base = f"s_{base}"
        base = base[:MAX_STEP_ID]
        candidate, n = base, 2
        while candidate in taken:
            suffix = f"_{n}"
            candidate, n = base[: MAX_STEP_ID - len(suffix)] + suffix, n + 1
        taken.add(candidate)
        mapped[original] = candidate
    return mapped


def skill_steps(plan: Sequence[SkillStep]) -> list[onto.Step]:
    ids = skill_step_ids([s.id for s in plan])
    steps = []
    for step in plan:
        converted = onto.Step(id=ids[step.id], action=step.action, depends_on=[ids.get(d, d) for d in step.depends_on])
        converted.args.update(step.args)
        steps.append(converted)
    return steps


def infer_type(value: JSON) -> onto.InputType.ValueType:
    if isinstance(value, bool):
        return onto.INPUT_TYPE_BOOLEAN
    if isinstance(value, int) and abs(value) <= _MAX_SAFE_INTEGER:
        return onto.INPUT_TYPE_INTEGER
    if isinstance(value, int | float) and math.isfinite(value):
        return onto.INPUT_TYPE_NUMBER
    if isinstance(value, str):
        if len(value) > MAX_STRING_DEFAULT:
            return onto.INPUT_TYPE_JSON
        parts = urlsplit(value) if value.isprintable() and " " not in value else None
        if parts is not None and parts.scheme in ("http", "https") and parts.netloc:
            return onto.INPUT_TYPE_URL
        return onto.INPUT_TYPE_STRING
    return onto.INPUT_TYPE_JSON


def _with_default(field_: onto.InputField, value: JSON) -> onto.InputField:
    result = onto.InputField()
    result.CopyFrom(field_)
    if value is not None:
        result.default_value.CopyFrom(json_to_value(value))
        result.required = False
    return result


def skill_inputs(origin: Sequence[onto.InputField] | None, values: dict[str, JSON]) -> list[onto.InputField]:
    """The new skill's inputs: the origin skill's, else inferred from the values; the task's
    values become defaults."""
    if origin is not None:
        return [_with_default(f, values[f.name]) if f.name in values else f for f in origin]
    inferred = []
    for name, value in values.items():
        if not INPUT_NAME.fullmatch(name):
            continue  # not addressable as `{{ inputs.<name> }}` or `name=value`
        inferred.append(_with_default(onto.InputField(name=name, type=infer_type(value)), value))
    return inferred


def description(given: str, task_title: str) -> str:
    if given.strip():
        return given.strip()
    title = " ".join(task_title.split())
    return (f"Crystallized from the task “{title}”." if title else "Crystallized from a task.")[:MAX_DESCRIPTION]
