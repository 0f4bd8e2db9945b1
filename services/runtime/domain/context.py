"""A task's context (DESIGN §3: the present): variables as a JSON merge-patch target, and the
artifacts the task is using. Pure rules, no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nexus.kit.errors import FieldViolation, InvalidArgument
from nexus.kit.protos import etag
from nexus.kit.validation import JSON, json_problem

MAX_ACTIVE_FILES = 100


@dataclass(frozen=True, slots=True)
class Context:
    task_id: str
    variables: dict[str, JSON]
    active_files: tuple[str, ...]
    version: int  # 0: never written
    updated_at: Any = None

    @property
    def etag(self) -> str:
        return etag(self.version)


@dataclass(frozen=True, slots=True)
class ContextPatch:
    variables: dict[str, JSON] | None  # None: leave the variables alone
    add_files: tuple[str, ...]
    remove_files: tuple[str, ...]
    etag: str


def merge_patch(target: JSON, patch: JSON) -> JSON:
    """RFC 7386: an object patch merges key by key (null removes the key); anything else
    replaces the target. Iterative, so a deep patch cannot exhaust the stack."""
    if not isinstance(patch, dict):
        return patch
    root: dict[str, JSON] = dict(target) if isinstance(target, dict) else {}
    stack: list[tuple[dict[str, JSON], dict[str, JSON]]] = [(root, patch)]
    while stack:
        into, changes = stack.pop()
        for key, value in changes.items():
            if value is None:
                into.pop(key, None)
            elif isinstance(value, dict):
                current = into.get(key)
                child: dict[str, JSON] = dict(current) if isinstance(current, dict) else {}
                into[key] = child
                stack.append((child, value))
            else:
                into[key] = value
    return root


def apply(context: Context, patch: ContextPatch) -> tuple[dict[str, JSON], tuple[str, ...]]:
    """The patched variables and active files; INVALID_ARGUMENT when the result breaks a limit."""
    variables = context.variables
    if patch.variables is not None:
        merged = merge_patch(context.variables, patch.variables)
        assert isinstance(merged, dict)
        variables = merged
        problem = json_problem(variables)
        if problem:
            raise InvalidArgument(
                f"variables_patch: the patched variables {problem}",
                reason="CONTEXT_TOO_LARGE",
                violations=[FieldViolation("variables_patch", f"the patched variables {problem}")],
            )
    removed = set(patch.remove_files)
    files = [f for f in context.active_files if f not in removed]
    for file_id in patch.add_files:
        if file_id not in files:
            files.append(file_id)
    if len(files) > MAX_ACTIVE_FILES:
        raise InvalidArgument(
            f"add_active_files: a context holds at most {MAX_ACTIVE_FILES} active files",
            reason="TOO_MANY_ACTIVE_FILES",
            violations=[FieldViolation("add_active_files", f"a context holds at most {MAX_ACTIVE_FILES} active files")],
        )
    return variables, tuple(files)


def unknown_files(requested: Sequence[str], found: set[str]) -> list[FieldViolation]:
    """One violation per added id that names no artifact of the task."""
    return [
        FieldViolation(f"add_active_files[{i}]", "names no artifact of this task")
        for i, file_id in enumerate(requested)
        if file_id not in found
    ]
