"""A skill's definition: typed inputs and a step graph, and every rule that makes one valid.

Stored as JSONB in the shape of `to_json`; the proto messages mirror it field for field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from nexus.kit.errors import FieldViolation
from nexus.kit.validation import JSON, text_problem
from services.ontology.domain.inputs import InputType, value_problem

MAX_INPUTS = 64
MAX_STEPS = 256
MAX_DEPENDS_ON = 64
MAX_ALLOWED_VALUES = 100
MAX_ALLOWED_VALUE_LEN = 200
MAX_INPUT_DESCRIPTION = 1000
MAX_ACTION_LEN = 64
# The whole definition as stored JSON; a skill is a recipe, not a data store.
MAX_DEFINITION_BYTES = 256 * 1024
MAX_CYCLES_REPORTED = 5

# Input names appear in `{{ inputs.<name> }}` and `name=value`, so they are identifiers.
INPUT_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
INPUT_NAME_HINT = "must be 1-64 characters of a-z, 0-9 or '_', starting with a letter"
STEP_ID = re.compile(r"[a-z][a-z0-9_-]{0,63}")
STEP_ID_HINT = "must be 1-64 characters of a-z, 0-9, '_' or '-', starting with a letter"


@dataclass(frozen=True)
class InputField:
    name: str
    # None when the request gave no valid type (already reported by the caller).
    type: InputType | None
    required: bool = False
    has_default: bool = False
    default: JSON = None
    allowed_values: tuple[str, ...] = ()
    description: str = ""

    def to_json(self) -> dict[str, JSON]:
        out: dict[str, JSON] = {
            "name": self.name,
            "type": self.type.value if self.type else None,
            "required": self.required,
            "description": self.description,
        }
        if self.allowed_values:
            out["allowed_values"] = list(self.allowed_values)
        if self.has_default:
            out["default"] = self.default
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, JSON]) -> InputField:
        kind = data.get("type")
        allowed = data.get("allowed_values") or []
        return cls(
            name=str(data["name"]),
            type=InputType(kind) if isinstance(kind, str) else None,
            required=bool(data.get("required", False)),
            has_default="default" in data,
            default=data.get("default"),
            allowed_values=tuple(str(a) for a in allowed) if isinstance(allowed, list) else (),
            description=str(data.get("description") or ""),
        )


@dataclass(frozen=True)
class Step:
    id: str
    action: str
    args: dict[str, JSON] = field(default_factory=dict)
    depends_on: tuple[str, ...] = ()

    def to_json(self) -> dict[str, JSON]:
        return {"id": self.id, "action": self.action, "args": self.args, "depends_on": list(self.depends_on)}

    @classmethod
    def from_json(cls, data: Mapping[str, JSON]) -> Step:
        args = data.get("args")
        depends = data.get("depends_on") or []
        return cls(
            id=str(data["id"]),
            action=str(data["action"]),
            args=dict(args) if isinstance(args, dict) else {},
            depends_on=tuple(str(d) for d in depends) if isinstance(depends, list) else (),
        )


@dataclass(frozen=True)
class SkillDefinition:
    inputs: tuple[InputField, ...] = ()
    steps: tuple[Step, ...] = ()

    def to_json(self) -> dict[str, JSON]:
        return {"inputs": [i.to_json() for i in self.inputs], "steps": [s.to_json() for s in self.steps]}

    @classmethod
    def from_json(cls, data: Mapping[str, JSON]) -> SkillDefinition:
        inputs = data.get("inputs") or []
        steps = data.get("steps") or []
        return cls(
            inputs=tuple(InputField.from_json(i) for i in inputs if isinstance(i, dict))
            if isinstance(inputs, list)
            else (),
            steps=tuple(Step.from_json(s) for s in steps if isinstance(s, dict)) if isinstance(steps, list) else (),
        )

    def input(self, name: str) -> InputField | None:
        return next((i for i in self.inputs if i.name == name), None)


def validate(definition: SkillDefinition, prefix: str = "definition") -> list[FieldViolation]:
    """Every structural problem of a definition, one violation each (field paths under `prefix`)."""
    problems: list[FieldViolation] = []
    problems += _validate_inputs(definition.inputs, f"{prefix}.inputs")
    problems += _validate_steps(definition.steps, f"{prefix}.steps")
    if not problems:
        size = len(json.dumps(definition.to_json(), ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
        if size > MAX_DEFINITION_BYTES:
            problems.append(FieldViolation(prefix, f"is larger than {MAX_DEFINITION_BYTES} bytes as JSON"))
    return problems


def _text(problems: list[FieldViolation], path: str, value: str, max_len: int) -> bool:
    problem = text_problem(value)
    if problem:
        problems.append(FieldViolation(path, problem))
    elif len(value) > max_len:
        problems.append(FieldViolation(path, f"must be at most {max_len} characters, got {len(value)}"))
    return problem is None and len(value) <= max_len


def _validate_inputs(inputs: Sequence[InputField], prefix: str) -> list[FieldViolation]:
    problems: list[FieldViolation] = []
    if len(inputs) > MAX_INPUTS:
        return [FieldViolation(prefix, f"must have at most {MAX_INPUTS} inputs, got {len(inputs)}")]
    seen: dict[str, int] = {}
    for index, item in enumerate(inputs):
        path = f"{prefix}[{index}]"
        if not _text(problems, f"{path}.name", item.name, 64):
            pass
        elif not INPUT_NAME.fullmatch(item.name):
            problems.append(FieldViolation(f"{path}.name", INPUT_NAME_HINT))
        elif item.name in seen:
            problems.append(FieldViolation(f"{path}.name", f"duplicates the name of inputs[{seen[item.name]}]"))
        else:
            seen[item.name] = index
        _text(problems, f"{path}.description", item.description, MAX_INPUT_DESCRIPTION)
        problems += _validate_allowed_values(item, f"{path}.allowed_values")
        if item.has_default and item.type is not None:
            problem = value_problem(item.type, item.default, item.allowed_values)
            if problem:
                problems.append(FieldViolation(f"{path}.default_value", problem))
    return problems


def _validate_allowed_values(item: InputField, path: str) -> list[FieldViolation]:
    problems: list[FieldViolation] = []
    if item.type is None:
        return problems
    if item.type is not InputType.ENUM:
        if item.allowed_values:
            problems.append(FieldViolation(path, "is only for enum inputs"))
        return problems
    if not item.allowed_values:
        problems.append(FieldViolation(path, "must list at least one value for an enum input"))
    elif len(item.allowed_values) > MAX_ALLOWED_VALUES:
        problems.append(FieldViolation(path, f"must have at most {MAX_ALLOWED_VALUES} values"))
    else:
        seen: set[str] = set()
        for index, value in enumerate(item.allowed_values):
            if not _text(problems, f"{path}[{index}]", value, MAX_ALLOWED_VALUE_LEN):
                continue
            if not value.strip():
                problems.append(FieldViolation(f"{path}[{index}]", "must not be blank"))
            elif value in seen:
                problems.append(FieldViolation(f"{path}[{index}]", "is listed twice"))
            seen.add(value)
    return problems


def _validate_steps(steps: Sequence[Step], prefix: str) -> list[FieldViolation]:
    problems: list[FieldViolation] = []
    if len(steps) > MAX_STEPS:
        return [FieldViolation(prefix, f"must have at most {MAX_STEPS} steps, got {len(steps)}")]
    ids: dict[str, int] = {}
    for index, step in enumerate(steps):
        path = f"{prefix}[{index}]"
        if not _text(problems, f"{path}.id", step.id, 64):
            pass
        elif not STEP_ID.fullmatch(step.id):
            problems.append(FieldViolation(f"{path}.id", STEP_ID_HINT))
        elif step.id in ids:
            problems.append(FieldViolation(f"{path}.id", f"duplicates the id of steps[{ids[step.id]}]"))
        else:
            ids[step.id] = index
        if _text(problems, f"{path}.action", step.action, MAX_ACTION_LEN) and not step.action.strip():
            problems.append(FieldViolation(f"{path}.action", "is required"))
    for index, step in enumerate(steps):
        path = f"{prefix}[{index}].depends_on"
        if len(step.depends_on) > MAX_DEPENDS_ON:
            problems.append(FieldViolation(path, f"must name at most {MAX_DEPENDS_ON} steps"))
            continue
        named: set[str] = set()
        for position, dependency in enumerate(step.depends_on):
            if text_problem(dependency) or len(dependency) > 64:
                problems.append(FieldViolation(f"{path}[{position}]", "is not a valid step id"))
            elif dependency not in ids:
                problems.append(FieldViolation(f"{path}[{position}]", "names no step of this skill"))
            elif dependency in named:
                problems.append(FieldViolation(f"{path}[{position}]", "names the same step twice"))
            named.add(dependency)
    if not problems:
        for cycle in find_cycles(steps)[:MAX_CYCLES_REPORTED]:
            where = ids[cycle[0]]
            problems.append(
                FieldViolation(f"{prefix}[{where}].depends_on", "forms a cycle: " + " → ".join([*cycle, cycle[0]]))
            )
    return problems


def find_cycles(steps: Iterable[Step]) -> list[list[str]]:
    """The cycles of the dependency graph, each as the list of step ids along it (each cycle
    reported once, starting at its first step in declared order). Iterative, so a hostile graph
    cannot exhaust the Python stack."""
    graph = {step.id: list(step.depends_on) for step in steps}
    order = {step_id: index for index, step_id in enumerate(graph)}
    white, grey, black = 0, 1, 2
    color = dict.fromkeys(graph, white)
    cycles: list[list[str]] = []
    seen: set[frozenset[str]] = set()
    for root in graph:
        if color[root] != white:
            continue
        path: list[str] = [root]
        iterators = [iter(graph[root])]
        color[root] = grey
        while iterators:
            nxt = next(iterators[-1], None)
            if nxt is None:
                color[path.pop()] = black
                iterators.pop()
                continue
            if nxt not in color:
                continue
            if color[nxt] == grey:
                cycle = path[path.index(nxt) :]
                key = frozenset(cycle)
                if key not in seen:
                    seen.add(key)
                    start = min(range(len(cycle)), key=lambda i: order[cycle[i]])
                    cycles.append(cycle[start:] + cycle[:start])
            elif color[nxt] == white:
                color[nxt] = grey
                path.append(nxt)
                iterators.append(iter(graph[nxt]))
    return cycles
