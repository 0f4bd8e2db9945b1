"""A skill's definition: typed inputs and a step graph, and every rule that makes one valid.

Stored as JSONB in the shape of `to_json`; the proto messages mirror it field for field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from nexus.contract import stepgraph
from nexus.contract.stepgraph import check_text
from nexus.contract.steps import SkillStep
from nexus.kit.errors import FieldViolation
from nexus.kit.validation import JSON
from services.ontology.domain.inputs import InputType, value_problem

MAX_INPUTS = 64
MAX_ALLOWED_VALUES = 100
MAX_ALLOWED_VALUE_LEN = 200
MAX_INPUT_DESCRIPTION = 1000
# The whole definition as stored JSON; a skill is a recipe, not a data store.
MAX_DEFINITION_BYTES = 256 * 1024

# Input names appear in `{{ inputs.<name> }}` and `name=value`, so they are identifiers.
INPUT_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
INPUT_NAME_HINT = "must be 1-64 characters of a-z, 0-9 or '_', starting with a letter"
STEP_ID = re.compile(r"[a-z][a-z0-9_-]{0,63}")
STEP_ID_HINT = "must be 1-64 characters of a-z, 0-9, '_' or '-', starting with a letter"
STEP_RULES = stepgraph.Rules(id_field="id", id_pattern=STEP_ID, id_hint=STEP_ID_HINT, whole="skill")


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
class SkillDefinition:
    inputs: tuple[InputField, ...] = ()
    steps: tuple[SkillStep, ...] = ()

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
            steps=tuple(SkillStep.from_json(s) for s in steps if isinstance(s, dict))
            if isinstance(steps, list)
            else (),
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


def _validate_inputs(inputs: Sequence[InputField], prefix: str) -> list[FieldViolation]:
    problems: list[FieldViolation] = []
    if len(inputs) > MAX_INPUTS:
        return [FieldViolation(prefix, f"must have at most {MAX_INPUTS} inputs, got {len(inputs)}")]
    seen: dict[str, int] = {}
    for index, item in enumerate(inputs):
        path = f"{prefix}[{index}]"
        if not check_text(problems, f"{path}.name", item.name, 64):
            pass
        elif not INPUT_NAME.fullmatch(item.name):
            problems.append(FieldViolation(f"{path}.name", INPUT_NAME_HINT))
        elif item.name in seen:
            problems.append(FieldViolation(f"{path}.name", f"duplicates the name of inputs[{seen[item.name]}]"))
        else:
            seen[item.name] = index
        check_text(problems, f"{path}.description", item.description, MAX_INPUT_DESCRIPTION)
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
            if not check_text(problems, f"{path}[{index}]", value, MAX_ALLOWED_VALUE_LEN):
                continue
            if not value.strip():
                problems.append(FieldViolation(f"{path}[{index}]", "must not be blank"))
            elif value in seen:
                problems.append(FieldViolation(f"{path}[{index}]", "is listed twice"))
            seen.add(value)
    return problems


def _validate_steps(steps: Sequence[SkillStep], prefix: str) -> list[FieldViolation]:
    return stepgraph.structure_problems(steps, prefix, STEP_RULES)
