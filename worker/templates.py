"""`{{ inputs.<name> }}` and `{{ vars.<name> }}` in step args (catalog/ACTIONS.md). Pure."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from nexus.contract.actions import TEMPLATE
from nexus.kit.validation import JSON
from worker.errors import StepFailure

NAMESPACES = ("inputs", "vars")
_VARS = re.compile(r"\{\{\s*vars\.")


def _text(value: JSON) -> str:
    """Strings as they are; anything else as compact JSON (as ACTIONS.md says), keys sorted: a
    value read back from the database (JSONB) has lost its key order."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def render(value: JSON, inputs: Mapping[str, JSON], variables: Mapping[str, JSON], *, path: str = "args") -> JSON:
    """`value` with every template in every string (nested in objects and lists too) replaced.
    A template naming an unknown input, variable or namespace is a StepFailure that names it."""
    if isinstance(value, str):
        return _render_text(value, inputs, variables, path)
    if isinstance(value, list):
        return [render(item, inputs, variables, path=f"{path}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, dict):
        return {key: render(item, inputs, variables, path=f"{path}.{key}") for key, item in value.items()}
    return value


def _render_text(text: str, inputs: Mapping[str, JSON], variables: Mapping[str, JSON], path: str) -> str:
    def replace(match: re.Match[str]) -> str:
        space, name = match.group(1), match.group(2)
        source = {"inputs": inputs, "vars": variables}.get(space)
        if source is None:
            raise StepFailure(
                "UNKNOWN_TEMPLATE_NAME",
                f"{path}: template namespace {space!r} is neither inputs nor vars",
                {"arg": path, "template": match.group(0)},
            )
        if name not in source:
            what = "input" if space == "inputs" else "variable"
            raise StepFailure(
                "UNKNOWN_TEMPLATE_NAME",
                f"{path}: template names unknown {what} {name!r}",
                {"arg": path, "template": match.group(0)},
            )
        return _text(source[name])

    return TEMPLATE.sub(replace, text)


def reads_variables(value: JSON) -> bool:
    """Whether any string in `value` reads a context variable (then the step needs the context)."""
    if isinstance(value, str):
        return _VARS.search(value) is not None
    if isinstance(value, list):
        return any(reads_variables(item) for item in value)
    if isinstance(value, dict):
        return any(reads_variables(item) for item in value.values())
    return False
