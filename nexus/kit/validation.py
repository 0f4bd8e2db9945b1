"""Request validation that every service shares (DESIGN §5).

A `Violations` collector gathers every bad field of a request, so the caller gets one
INVALID_ARGUMENT listing all of them rather than fixing one field per round trip.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Collection, Iterable
from typing import TypeAlias

from google.protobuf import field_mask_pb2, struct_pb2
from google.protobuf.descriptor import EnumDescriptor
from google.protobuf.message import Message

from nexus.kit.errors import FieldViolation, InvalidArgument
from nexus.kit.protos import MAX_ETAG_CHARS

JSON: TypeAlias = "bool | int | float | str | list[JSON] | dict[str, JSON] | None"

MiB = 1024 * 1024
MAX_JSON_DEPTH = 32
MAX_JSON_BYTES = 1 * MiB
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
# Integers survive a trip through a JSON double only up to 2**53.
_MAX_EXACT_INT = 2**53

# Ids people choose and type (`agent_creator_v1`, `scan_website`): agents and skills.
SLUG = re.compile(r"[a-z][a-z0-9_-]{1,63}")
SLUG_HINT = "must be 2-64 characters of a-z, 0-9, '_' or '-', starting with a letter"

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def is_uuid(value: str) -> bool:
    """Whether `value` is a UUID in its 36-character form (either case)."""
    return len(value) == 36 and _UUID.match(value) is not None


def text_problem(value: str) -> str | None:
    """Why a string cannot be stored, or None. Postgres rejects NUL; UTF-8 rejects lone surrogates."""
    if "\x00" in value:
        return "contains a NUL character"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone surrogate (not valid Unicode)"
    return None


class Violations:
    """Collects field violations; `raise_if_any` turns them into one InvalidArgument."""

    def __init__(self) -> None:
        self.items: list[FieldViolation] = []

    def __bool__(self) -> bool:
        return bool(self.items)

    def add(self, field: str, description: str) -> None:
        self.items.append(FieldViolation(field, description))

    def check(self, ok: bool, field: str, description: str) -> bool:
        if not ok:
            self.add(field, description)
        return ok

    def error(
        self, message: str = "the request has invalid fields", *, reason: str = "INVALID_ARGUMENT"
    ) -> InvalidArgument | None:
        """The one InvalidArgument naming every violation, or None when there is none."""
        if not self.items:
            return None
        first = self.items[0]
        detail = f"{first.field}: {first.description}"
        if len(self.items) > 1:
            detail += f" (and {len(self.items) - 1} more)"
        return InvalidArgument(f"{message}: {detail}", reason=reason, violations=self.items)

    def raise_if_any(
        self, message: str = "the request has invalid fields", *, reason: str = "INVALID_ARGUMENT"
    ) -> None:
        error = self.error(message, reason=reason)
        if error is not None:
            raise error

    def text(
        self,
        field: str,
        value: str,
        *,
        max_len: int,
        min_len: int = 0,
        required: bool = False,
        pattern: re.Pattern[str] | None = None,
        pattern_hint: str = "has an invalid format",
    ) -> str:
        """Checks a string field; returns it unchanged so calls read as assignments."""
        problem = text_problem(value)
        if problem:
            self.add(field, problem)
        elif required and not value.strip():
            self.add(field, "is required")
        elif len(value) > max_len:
            self.add(field, f"must be at most {max_len} characters, got {len(value)}")
        elif value and len(value) < min_len:
            self.add(field, f"must be at least {min_len} characters")
        elif value and pattern is not None and not pattern.fullmatch(value):
            self.add(field, pattern_hint)
        return value

    def uuid(self, field: str, value: str, *, required: bool = True) -> str | None:
        """A canonical lowercase UUID string, or None when absent and optional."""
        if not value:
            if required:
                self.add(field, "is required")
            return None
        if not is_uuid(value):
            self.add(field, "must be a UUID such as 123e4567-e89b-12d3-a456-426614174000")
            return None
        return str(uuid.UUID(value))

    def etag(self, field: str, value: str) -> str:
        """An etag a client sends back (empty: no check). Any etag the services issue is far below
        the limit; a longer one cannot be theirs and is refused as malformed, in every service."""
        return self.text(field, value, max_len=MAX_ETAG_CHARS)

    def slug(self, field: str, value: str, *, required: bool = True) -> str:
        """An id of the SLUG form (agents, skills)."""
        if not value:
            if required:
                self.add(field, "is required")
            return value
        return self.text(field, value, max_len=64, pattern=SLUG, pattern_hint=SLUG_HINT)

    def enum(
        self,
        field: str,
        value: int,
        enum: EnumDescriptor,
        *,
        required: bool = True,
        allowed: Collection[int] | None = None,
    ) -> int:
        """Rejects numbers the enum does not define (proto3 enums are open) and, if required, 0.
        `allowed` narrows the values this caller may send; the message names only those, and
        the caller rejects a defined value outside them with its own words."""
        names = ", ".join(v.name for v in enum.values if v.number != 0 and (allowed is None or v.number in allowed))
        if value not in enum.values_by_number:
            self.add(field, f"unknown {enum.name} value {value}; one of {names}")
        elif value == 0 and required:
            self.add(field, f"is required; one of {names}")
        return value

    def json(self, field: str, value: JSON) -> JSON:
        """Checks a decoded JSON value: depth, size, and strings that Postgres cannot store."""
        problem = json_problem(value)
        if problem:
            self.add(field, problem)
        return value

    def struct(self, field: str, message: struct_pb2.Struct) -> dict[str, JSON]:
        """A google.protobuf.Struct as a plain dict, checked as JSON."""
        try:
            result = struct_to_dict(message)
        except _BadJSON as bad:
            self.add(field, str(bad))
            return {}
        self.json(field, result)
        return result

    def value(self, field: str, message: struct_pb2.Value) -> JSON:
        """A google.protobuf.Value as plain JSON, checked."""
        try:
            result = value_to_json(message)
        except _BadJSON as bad:
            self.add(field, str(bad))
            return None
        self.json(field, result)
        return result


def required_uuid(field: str, value: str) -> str:
    """A request's one required id (`task_id`, `connection_id`): canonical, or INVALID_ARGUMENT."""
    v = Violations()
    checked = v.uuid(field, value)
    v.raise_if_any()
    assert checked is not None
    return checked


def page_size(value: int, *, default: int = DEFAULT_PAGE_SIZE, maximum: int = MAX_PAGE_SIZE) -> int:
    """AIP-158: 0 means the default, above the maximum is coerced down, negative is an error."""
    if value < 0:
        raise InvalidArgument(
            "page_size must not be negative",
            violations=[FieldViolation("page_size", "must not be negative")],
        )
    if value == 0:
        return default
    return min(value, maximum)


def update_paths(mask: field_mask_pb2.FieldMask, resource: Message, allowed: Iterable[str]) -> set[str]:
    """AIP-134: the paths to update. `*` means every allowed field; an empty mask means the
    allowed fields that are populated in `resource`. Unknown paths are field violations."""
    allowed_set = set(allowed)
    paths = list(mask.paths)
    if not paths:
        populated = {fd.name for fd, _ in resource.ListFields()} & allowed_set
        if not populated:
            raise InvalidArgument(
                "nothing to update",
                violations=[FieldViolation("update_mask", "names no field, and no updatable field is set")],
            )
        return populated
    if paths == ["*"]:
        return allowed_set
    v = Violations()
    for path in paths:
        v.check(
            path in allowed_set,
            "update_mask",
            f"cannot update {path!r}; allowed: {', '.join(sorted(allowed_set))}",
        )
    v.raise_if_any()
    return set(paths)


class _BadJSON(ValueError):
    pass


def json_problem(value: JSON, *, max_depth: int = MAX_JSON_DEPTH, max_bytes: int = MAX_JSON_BYTES) -> str | None:
    """Why a JSON value cannot be accepted, or None."""
    size = 0
    # Iterative walk: a hostile document must not exhaust the Python stack.
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            if depth + 1 > max_depth:
                return f"is nested deeper than {max_depth} levels"
            for key, child in node.items():
                if not isinstance(key, str):
                    return "has an object key that is not a string"
                problem = text_problem(key)
                if problem:
                    return f"has a key that {problem}"
                size += len(key) + 4
                stack.append((child, depth + 1))
        elif isinstance(node, list):
            if depth + 1 > max_depth:
                return f"is nested deeper than {max_depth} levels"
            stack.extend((child, depth + 1) for child in node)
            size += 2 + len(node)
        elif isinstance(node, str):
            problem = text_problem(node)
            if problem:
                return f"has a string that {problem}"
            size += len(node.encode("utf-8")) + 2
        elif isinstance(node, bool) or node is None:
            size += 5
        elif isinstance(node, int | float):
            if isinstance(node, float) and not math.isfinite(node):
                return "has a number that is not finite"
            size += 24
        else:
            return f"has a value of unsupported type {type(node).__name__}"
        if size > max_bytes:
            return f"is larger than {max_bytes} bytes"
    return None


def _number(value: float) -> int | float:
    if not math.isfinite(value):
        raise _BadJSON("has a number that is not finite")
    if value.is_integer() and abs(value) <= _MAX_EXACT_INT:
        return int(value)
    return value


def value_to_json(message: struct_pb2.Value) -> JSON:
    kind = message.WhichOneof("kind")
    if kind == "struct_value":
        return struct_to_dict(message.struct_value)
    if kind == "list_value":
        return [value_to_json(item) for item in message.list_value.values]
    if kind == "string_value":
        return message.string_value
    if kind == "number_value":
        return _number(message.number_value)
    if kind == "bool_value":
        return message.bool_value
    return None


def struct_to_dict(message: struct_pb2.Struct) -> dict[str, JSON]:
    """Converts without json_format, keeping whole numbers as ints (Struct stores only doubles)."""
    return {key: value_to_json(item) for key, item in message.fields.items()}


def dict_to_struct(value: dict[str, JSON]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(value)
    return message


def json_to_value(value: JSON) -> struct_pb2.Value:
    message = struct_pb2.Value()
    if value is None:
        message.null_value = struct_pb2.NULL_VALUE
    elif isinstance(value, bool):
        message.bool_value = value
    elif isinstance(value, int | float):
        message.number_value = value
    elif isinstance(value, str):
        message.string_value = value
    elif isinstance(value, list):
        message.list_value.extend(value)  # type: ignore[arg-type]  # nested JSON is accepted at runtime
    else:
        message.struct_value.update(value)
    return message
