"""Requests carrying JSON nested deeper than a Python client can build.

protobuf's Python runtime refuses to copy a Struct nested past about 34 levels, so a test cannot
put one into a request the usual way. These helpers write the wire format directly: a request's
own bytes plus, at a field path such as `skill.definition.steps[0].args`, a Struct nested to any
depth. The server sees exactly what a hostile client of any language can send.
"""

from __future__ import annotations

import re

from google.protobuf.message import Message

_LEN = 2  # the wire type of length-delimited fields
_PART = re.compile(r"(\w+)(?:\[(\d+)\])?")


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | _LEN) + _varint(len(payload)) + payload


def nested_struct(depth: int) -> bytes:
    """A Struct `depth` objects deep: {"a": {"a": … {}}}, encoded."""
    struct = b""
    for _ in range(depth - 1):
        value = _field(5, struct)  # Value.struct_value
        entry = _field(1, b"a") + _field(2, value)  # FieldsEntry: key, value
        struct = _field(1, entry)  # Struct.fields
    return struct


def nested_value(depth: int) -> bytes:
    """A Value holding a Struct `depth` objects deep, encoded."""
    return _field(5, nested_struct(depth))


def with_field(request: Message, path: str, payload: bytes) -> bytes:
    """`request` encoded, with `payload` (an encoded message) as the field at `path`."""
    name, index, rest = _split(path)
    field = request.DESCRIPTOR.fields_by_name[name]
    if not rest:
        assert index is None, "the last part names a singular field"
        return request.SerializeToString() + _field(field.number, payload)
    others = type(request)()
    others.CopyFrom(request)
    others.ClearField(name)
    if index is None:
        inner = with_field(getattr(request, name), rest, payload)
        return others.SerializeToString() + _field(field.number, inner)
    elements = list(getattr(request, name))
    encoded = [
        with_field(element, rest, payload) if i == index else element.SerializeToString()
        for i, element in enumerate(elements)
    ]
    return others.SerializeToString() + b"".join(_field(field.number, e) for e in encoded)


def _split(path: str) -> tuple[str, int | None, str]:
    head, _, rest = path.partition(".")
    match = _PART.fullmatch(head)
    assert match is not None, path
    return match[1], int(match[2]) if match[2] is not None else None, rest
