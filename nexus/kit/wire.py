"""Finds the field that made a request undecodable, so the error can name it.

The protobuf runtime rejects a proto3 string holding invalid UTF-8 (a lone surrogate, say) with
no hint of where. Walking the wire format against the descriptor recovers the field path.
"""

from __future__ import annotations

from google.protobuf.descriptor import Descriptor, FieldDescriptor


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


def find_invalid_field(descriptor: Descriptor, data: bytes, depth: int = 0) -> str | None:
    """The path (`steps[1].id`) of the first string field that is not valid UTF-8, else None."""
    counts: dict[int, int] = {}
    pos = 0
    try:
        while pos < len(data):
            key, pos = _varint(data, pos)
            number, wire_type = key >> 3, key & 7
            field = descriptor.fields_by_number.get(number)
            index = counts.get(number, 0)
            counts[number] = index + 1
            if wire_type == 0:
                _, pos = _varint(data, pos)
            elif wire_type == 1:
                pos += 8
            elif wire_type == 5:
                pos += 4
            elif wire_type == 2:
                length, pos = _varint(data, pos)
                chunk = data[pos : pos + length]
                if len(chunk) != length:
                    raise _Truncated
                pos += length
                if field is None:
                    continue
                name = field.name
                if field.is_repeated and not _is_map(field):
                    name = f"{name}[{index}]"
                if field.type == FieldDescriptor.TYPE_STRING:
                    try:
                        chunk.decode("utf-8")
                    except UnicodeDecodeError:
                        return name
                elif field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type and depth < 64:
                    inner = find_invalid_field(field.message_type, chunk, depth + 1)
                    if inner is not None:
                        return f"{name}.{inner}"
            else:
                return None
    except _Truncated:
        return None
    return None


def _is_map(field: FieldDescriptor) -> bool:
    return bool(field.message_type and field.message_type.GetOptions().map_entry)
