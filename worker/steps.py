"""Pure rules for running a step: its args against the action vocabulary, the idempotency keys
of its effects, and the merge patch that sets a variable."""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from nexus.contract.actions import ACTIONS
from nexus.kit.validation import JSON
from worker.errors import StepFailure

# uuid5 namespace of the artifacts the worker writes: a step's request_id is a function of
# (task, step), so a re-run of the step after a crash returns the artifact written the first time.
ARTIFACT_NAMESPACE = uuid.UUID("6f1c1d0e-9a43-4b8e-8f0e-6b1f3c8a2d57")
KEY_PREFIX = "worker"
CONTENT_TYPES = {
    "markdown": "text/markdown; charset=utf-8",
    "text": "text/plain; charset=utf-8",
    "json": "application/json",
    "html": "text/html; charset=utf-8",
    "csv": "text/csv; charset=utf-8",
}
DEFAULT_CONTENT_TYPE = "text/plain; charset=utf-8"


def client_key(step_id: str, effect: str) -> str:
    """The client key of an event a step appends. Keys are unique per task, so (step, effect)
    is enough: appending it again (a re-run after a crash) returns the first event and writes
    nothing. At most 7 + 64 + 1 + 8 characters (the runtime allows 128)."""
    return f"{KEY_PREFIX}:{step_id}:{effect}"


def artifact_request_id(task_id: str, step_id: str) -> str:
    return str(uuid.uuid5(ARTIFACT_NAMESPACE, f"{task_id}/{step_id}"))


def content_type(artifact_type: str) -> str:
    return CONTENT_TYPES.get(artifact_type, DEFAULT_CONTENT_TYPE)


def check_args(step_id: str, action_name: str, args: Mapping[str, JSON]) -> None:
    """StepFailure unless the action is known and its args have the shape ACTIONS.md gives.
    Extra args are ignored (a skill made through the API may carry more than the worker reads)."""
    action = ACTIONS.get(action_name)
    if action is None:
        known = ", ".join(ACTIONS)
        raise StepFailure(
            "UNKNOWN_ACTION",
            f"unknown action {action_name!r}; the reference worker runs {known}",
            {"action": action_name},
        )
    problems = [f"missing arg {name!r}" for name in sorted(action.required - args.keys())]
    for name in sorted(action.strings & args.keys()):
        value = args[name]
        if not isinstance(value, str) or not value.strip():
            problems.append(f"arg {name!r} must be a non-empty string")
    takeaways = args.get("takeaways", [])
    if action_name == "write_memory" and (
        not isinstance(takeaways, list) or not all(isinstance(t, str) for t in takeaways)
    ):
        problems.append("arg 'takeaways' must be a list of strings")
    if action_name == "render" and not isinstance(args.get("props", {}), dict):
        problems.append("arg 'props' must be an object")
    if problems:
        raise StepFailure("BAD_STEP_ARGS", f"{action_name}: {'; '.join(problems)}", {"problems": list(problems)})


def replace_patch(old: JSON, new: JSON) -> JSON:
    """The RFC 7386 merge patch that turns `old` into `new`: a merge patch merges objects, so
    setting an object-valued variable must also remove the keys it no longer has. (A null inside
    a new object cannot be expressed by a merge patch; it is dropped.)"""
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return new
    patch: dict[str, JSON] = {key: None for key in old if key not in new}
    for key, value in new.items():
        if key not in old:
            patch[key] = value
        elif old[key] != value:
            patch[key] = replace_patch(old[key], value)
    return patch


def set_variable_patch(variables: Mapping[str, JSON], name: str, value: JSON) -> dict[str, JSON]:
    """The patch that sets variable `name` to `value` exactly (null removes it)."""
    if name in variables:
        return {name: replace_patch(variables[name], value)}
    return {name: value}
