"""Finds the fields that made a request undecodable, so the error can name each of them.

The protobuf runtime rejects a request with no hint of where the problem is, in two cases that
bad input reaches: a proto3 string holding invalid UTF-8 (a lone surrogate, say), and messages
nested past its recursion limit, which JSON (`google.protobuf.Struct`) reaches at about 34 levels
wherever it sits in the request. Walking the wire format against the descriptor recovers the path
of each: the string's own path, and for JSON the field that holds it, with the same words
validation uses for a document that did decode but is nested deeper than 32 levels.
"""

from __future__ import annotations

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from nexus.kit.errors import FieldViolation, InvalidArgument
from nexus.kit.validation import MAX_JSON_DEPTH, Violations

NOT_UTF8 = "is not valid UTF-8 (strings must be valid Unicode)"
TOO_DEEP = f"is nested deeper than {MAX_JSON_DEPTH} levels"

# Messages that are JSON: Struct and ListValue each open one level (an object, an array); a Value
# or a map entry between them does not.
_JSON_TYPES = frozenset({"google.protobuf.Struct", "google.protobuf.ListValue", "google.protobuf.Value"})
_JSON_CONTAINERS = frozenset({"google.protobuf.Struct", "google.protobuf.ListValue"})
# Nesting of ordinary messages (Nexus protos are not recursive; JSON is counted separately).
_MAX_MESSAGE_DEPTH = 64


class _Truncated(Exception):
    pass


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise _Truncated
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


class _Walk:
    def __init__(self) -> None:
        self.violations: list[FieldViolation] = []
        self._too_deep: set[str] = set()

    def message(
        self, descriptor: Descriptor, data: bytes, path: str, depth: int, json_root: str | None, json_depth: int
    ) -> None:
        """Walks one message; `json_root` is the path of the JSON field it is inside, if any."""
        counts: dict[int, int] = {}
        pos = 0
        while pos < len(data):
            key, pos = _varint(data, pos)
            number, wire_type = key >> 3, key & 7
            if wire_type == 0:
                _, pos = _varint(data, pos)
                continue
            if wire_type == 1:
                pos += 8
                continue
            if wire_type == 5:
                pos += 4
                continue
            if wire_type != 2:
                raise _Truncated  # groups and invalid wire types: the bytes are not a message
            length, pos = _varint(data, pos)
            chunk = data[pos : pos + length]
            if len(chunk) != length:
                raise _Truncated
            pos += length
            field = descriptor.fields_by_number.get(number)
            if field is None:
                continue
            index = counts.get(number, 0)
            counts[number] = index + 1
            name = field.name
            if field.is_repeated and not _is_map(field):
                name = f"{name}[{index}]"
            child_path = f"{path}.{name}" if path else name
            if field.type == FieldDescriptor.TYPE_STRING:
                try:
                    chunk.decode("utf-8")
                except UnicodeDecodeError:
                    self.violations.append(FieldViolation(child_path, NOT_UTF8))
            elif field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type is not None:
                self._child(field.message_type, chunk, child_path, depth, json_root, json_depth)

    def _child(
        self, descriptor: Descriptor, data: bytes, path: str, depth: int, json_root: str | None, json_depth: int
    ) -> None:
        kind = descriptor.full_name
        if json_root is None and kind in _JSON_TYPES:
            json_root, json_depth = path, 0
        if json_root is not None:
            if json_root in self._too_deep:
                return
            if kind in _JSON_CONTAINERS:
                json_depth += 1
            if json_depth > MAX_JSON_DEPTH:
                self._too_deep.add(json_root)
                self.violations.append(FieldViolation(json_root, TOO_DEEP))
                return
        elif depth >= _MAX_MESSAGE_DEPTH:
            return
        self.message(descriptor, data, path, depth + 1, json_root, json_depth)


def find_invalid_fields(descriptor: Descriptor, data: bytes) -> list[FieldViolation]:
    """One violation per string that is not valid UTF-8 (at its path, `steps[1].id`) and per JSON
    field nested deeper than MAX_JSON_DEPTH (at the field's path, `steps[0].args`). Empty when
    the bytes are not a message at all, or fail for another reason."""
    walk = _Walk()
    try:
        walk.message(descriptor, data, "", 0, None, 0)
    except _Truncated:
        return []
    return walk.violations


def undecodable(descriptor: Descriptor | None, data: bytes) -> InvalidArgument:
    """The error for request bytes the protobuf runtime would not decode, naming every bad field
    it can find. JSON nested too deep is the same mistake whether or not the runtime could still
    decode it (validation names it then), so it gets validation's reason; broken bytes get
    MALFORMED_REQUEST. Both ports (gRPC and Connect) answer with this."""
    v = Violations()
    if descriptor is not None:
        for found in find_invalid_fields(descriptor, data):
            v.add(found.field, found.description)
    if not v:
        v.add("", "the request body does not decode")
    if all(item.description == TOO_DEEP for item in v.items):
        error = v.error()
    else:
        error = v.error("the request is not a valid protobuf message", reason="MALFORMED_REQUEST")
    assert error is not None
    return error


def _is_map(field: FieldDescriptor) -> bool:
    return bool(field.message_type and field.message_type.GetOptions().map_entry)
