"""The shared validation rules of DESIGN §5, as pure functions."""

from __future__ import annotations

import re

import pytest
from google.protobuf import field_mask_pb2, struct_pb2, timestamp_pb2
from google.protobuf.descriptor_pb2 import FieldDescriptorProto

from nexus.kit import paging
from nexus.kit.errors import InvalidArgument
from nexus.kit.validation import (
    JSON,
    MAX_JSON_DEPTH,
    Violations,
    dict_to_struct,
    json_problem,
    page_size,
    struct_to_dict,
    update_paths,
    value_to_json,
)


def nested(depth: int) -> JSON:
    value: JSON = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def test_text_rejects_nul_and_lone_surrogates_and_names_the_field() -> None:
    v = Violations()
    v.text("title", "a\x00b", max_len=10)
    v.text("name", "x\ud800y", max_len=10)
    v.text("ok", "fine", max_len=10)
    assert [(i.field, i.description) for i in v.items] == [
        ("title", "contains a NUL character"),
        ("name", "contains a lone surrogate (not valid Unicode)"),
    ]
    with pytest.raises(InvalidArgument) as raised:
        v.raise_if_any()
    assert "title" in raised.value.message and len(raised.value.violations) == 2


def test_text_length_required_and_pattern() -> None:
    v = Violations()
    v.text("long", "x" * 11, max_len=10)
    v.text("blank", "   ", max_len=10, required=True)
    v.text("short", "ab", max_len=10, min_len=3)
    v.text("slug", "Has Space", max_len=20, pattern=re.compile(r"[a-z_]+"), pattern_hint="lowercase letters")
    assert {i.field: i.description for i in v.items} == {
        "long": "must be at most 10 characters, got 11",
        "blank": "is required",
        "short": "must be at least 3 characters",
        "slug": "lowercase letters",
    }


def test_json_depth_limit_is_32_levels() -> None:
    assert json_problem(nested(MAX_JSON_DEPTH)) is None
    assert json_problem(nested(MAX_JSON_DEPTH + 1)) == "is nested deeper than 32 levels"
    assert json_problem([[[]]], max_depth=2) == "is nested deeper than 2 levels"


def test_json_size_limit_is_one_mebibyte() -> None:
    assert json_problem({"s": "x" * 1000}) is None
    assert json_problem({"s": "x" * (1024 * 1024)}) == "is larger than 1048576 bytes"
    assert json_problem(["x" * 1000] * 1100) == "is larger than 1048576 bytes"


def test_json_rejects_nul_and_surrogates_in_keys_and_values_and_non_finite_numbers() -> None:
    assert json_problem({"a": ["ok", "no\x00"]}) == "has a string that contains a NUL character"
    assert json_problem({"k\ud83d": 1}) == "has a key that contains a lone surrogate (not valid Unicode)"
    assert json_problem({"n": float("nan")}) == "has a number that is not finite"


def test_struct_conversion_keeps_whole_numbers_as_ints() -> None:
    struct = dict_to_struct({"n": 3, "f": 1.5, "big": 2**60, "list": [1, "a", None, True], "o": {"x": 0}})
    assert struct_to_dict(struct) == {
        "n": 3,
        "f": 1.5,
        "big": float(2**60),
        "list": [1, "a", None, True],
        "o": {"x": 0},
    }


def test_struct_with_infinite_number_is_a_violation() -> None:
    v = Violations()
    v.value("value", struct_pb2.Value(number_value=float("inf")))
    assert [i.field for i in v.items] == ["value"]
    assert value_to_json(struct_pb2.Value(string_value="x")) == "x"


def test_page_size_default_cap_and_negative() -> None:
    assert page_size(0) == 50
    assert page_size(10) == 10
    assert page_size(10**9) == 1000
    assert page_size(2**31 - 1, maximum=200) == 200
    with pytest.raises(InvalidArgument) as raised:
        page_size(-1)
    assert raised.value.violations[0].field == "page_size"


def test_uuid_and_enum_checks() -> None:
    v = Violations()
    assert v.uuid("id", "123E4567-E89B-12D3-A456-426614174000") == "123e4567-e89b-12d3-a456-426614174000"
    assert v.uuid("bad", "not-a-uuid") is None
    assert v.uuid("missing", "") is None
    assert v.uuid("optional", "", required=False) is None
    assert v.slug("agent", "agent_creator_v1") == "agent_creator_v1"
    v.slug("bad_slug", "Agent One")
    enum = FieldDescriptorProto.DESCRIPTOR.enum_types_by_name["Type"]
    v.enum("type", 9, enum)
    v.enum("type_unknown", 999, enum)
    assert [i.field for i in v.items] == ["bad", "missing", "bad_slug", "type_unknown"]


def test_update_paths_star_empty_and_unknown() -> None:
    resource = timestamp_pb2.Timestamp(seconds=5)
    assert update_paths(field_mask_pb2.FieldMask(paths=["*"]), resource, ["seconds", "nanos"]) == {"seconds", "nanos"}
    assert update_paths(field_mask_pb2.FieldMask(), resource, ["seconds", "nanos"]) == {"seconds"}
    with pytest.raises(InvalidArgument) as raised:
        update_paths(field_mask_pb2.FieldMask(paths=["seconds", "owner"]), resource, ["seconds"])
    assert [v.field for v in raised.value.violations] == ["update_mask"]
    with pytest.raises(InvalidArgument):
        update_paths(field_mask_pb2.FieldMask(), timestamp_pb2.Timestamp(), ["seconds"])


def test_page_tokens_are_opaque_and_bound_to_their_query() -> None:
    fp = paging.query_fingerprint("user-1", "status=running")
    token = paging.encode(["2026-01-01T00:00:00Z", "abc"], fp)
    assert paging.decode(token, fp) == ["2026-01-01T00:00:00Z", "abc"]
    assert paging.decode("", fp) is None
    for bad in ["!!!", token[:-3], "x" * 5000, paging.encode([1], paging.query_fingerprint("user-2"))]:
        with pytest.raises(InvalidArgument) as raised:
            paging.decode(bad, fp)
        assert raised.value.reason == "INVALID_PAGE_TOKEN"
