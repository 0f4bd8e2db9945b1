"""kit.paging's size accounting: pages end before the message limit, and continue exactly."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import replace as dataclass_replace
from datetime import UTC, datetime

import pytest
from google.protobuf import struct_pb2

from nexus.kit import paging
from nexus.kit.errors import InvalidArgument
from nexus.user.v1 import user_pb2

UUID = "123e4567-e89b-12d3-a456-426614174000"


def same(message: user_pb2.Setting) -> user_pb2.Setting:
    return message


def setting(key: str, size: int) -> user_pb2.Setting:
    return user_pb2.Setting(key=key, value=struct_pb2.Value(string_value="v" * size))


def test_the_budget_never_counts_less_than_the_encoded_response() -> None:
    for size in (0, 1, 126, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152):
        items = [setting(f"k{i}", size) for i in range(3)]
        response = user_pb2.ListSettingsResponse(settings=items, next_page_token="t" * 2048)
        counted = sum(paging.field_bytes(item.ByteSize()) for item in items)
        assert response.ByteSize() <= counted + paging.RESERVED_BYTES, size


def test_a_page_ends_at_the_last_item_that_fits_with_that_items_cursor() -> None:
    keyset = paging.Keyset(KeyCursor, "settings")
    items = [setting(f"k{i}", 400) for i in range(10)]
    each = paging.field_bytes(items[0].ByteSize())
    page = keyset.page(Request(page_size=100), paging.Budget(paging.RESERVED_BYTES + 3 * each), same)
    page.extend(items)
    assert [s.key for s in page.messages] == ["k0", "k1", "k2"]
    assert keyset.after(page.next_page_token) == KeyCursor("k2")
    everything = keyset.page(Request(page_size=100), paging.Budget(8 * 1024 * 1024), same)
    everything.extend(items)
    assert len(everything.messages) == 10 and everything.next_page_token == ""  # all fit: the end


def test_a_page_always_holds_its_first_item_so_a_list_progresses() -> None:
    keyset = paging.Keyset(KeyCursor, "settings")
    huge = [setting("huge", 100_000), setting("next", 10)]
    page = keyset.page(Request(page_size=100), paging.Budget(paging.RESERVED_BYTES + 10), same)
    page.extend(huge)
    assert [s.key for s in page.messages] == ["huge"]
    assert keyset.after(page.next_page_token) == KeyCursor("huge")
    # Only the first item of the whole response: after a fixed part, the budget is what is left.
    budget = paging.Budget(paging.RESERVED_BYTES + 100)
    assert budget.take(50) and not budget.take(60)


@dataclass(frozen=True)
class KeyCursor:
    key: str


@dataclass(frozen=True)
class Request:
    page_size: int = 0
    page_token: str = ""


def test_a_page_keeps_size_items_of_size_plus_one_and_has_a_token_only_when_more_follow() -> None:
    keyset = paging.Keyset(KeyCursor, "settings", "user-1")
    rows = [setting(f"k{i}", 10) for i in range(4)]
    page = keyset.page(Request(page_size=3), paging.Budget(8 * 1024 * 1024), same)
    assert page.limit == 4 and page.after is None
    assert [page.add(row) for row in rows] == [True, True, True, False]
    assert [s.key for s in page.messages] == ["k0", "k1", "k2"]
    assert keyset.after(page.next_page_token) == KeyCursor("k2")
    following = Request(page_size=3, page_token=page.next_page_token)
    last = keyset.page(following, paging.Budget(8 * 1024 * 1024), same)
    assert last.after == KeyCursor("k2")
    page = keyset.page(Request(page_size=3), paging.Budget(8 * 1024 * 1024), same)
    assert all(page.add(row) for row in rows[:3]) and page.next_page_token == ""


def test_a_page_that_ends_at_the_budget_continues_with_the_item_that_did_not_fit() -> None:
    keyset = paging.Keyset(KeyCursor, "q")
    rows = [setting(f"k{i}", 400) for i in range(10)]
    budget = paging.Budget(paging.RESERVED_BYTES + 3 * paging.field_bytes(rows[0].ByteSize()))
    page = keyset.page(Request(page_size=100), budget, same)
    added = [page.add(row) for row in rows[:5]]
    assert added == [True, True, True, False, False]  # the store stops reading at the first False
    assert keyset.after(page.next_page_token) == KeyCursor("k2")


@dataclass(frozen=True)
class ListCursor:
    pinned: bool
    active_at: datetime
    score: float
    seq: int
    id: paging.UUID
    owner: str | None


def test_typed_cursors_round_trip_and_a_forged_one_is_the_one_bad_token_error() -> None:
    keyset = paging.Keyset(ListCursor, "tasks", "user-1", ("running",))
    cursor = ListCursor(True, datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC), 0.5, 7, paging.UUID(UUID), None)
    assert keyset.after(keyset.token(cursor)) == cursor
    assert keyset.after(keyset.token(dataclass_replace(cursor, owner="u"))) == dataclass_replace(cursor, owner="u")
    upper = keyset.after(paging.encode([True, 0, 0.5, 7, UUID.upper(), None], keyset.fingerprint))
    assert upper is not None and upper.id == UUID
    forged: list[paging.Cursor] = [
        [1, 0, 0.5, 7, UUID, None],  # bool
        [True, "2026-01-01T00:00:00+00:00", 0.5, 7, UUID, None],  # time
        [True, 2**70, 0.5, 7, UUID, None],
        [True, 0, "x", 7, UUID, None],  # float
        [True, 0, 0.5, True, UUID, None],  # int
        [True, 0, 0.5, 7, "nope", None],  # uuid
        [True, 0, 0.5, 7, UUID, 3],  # optional text
        [True, 0, 0.5, 7, UUID, "a\x00"],
        [True, 0, 0.5, 7, UUID],
        [],
    ]
    for values in forged:
        with pytest.raises(InvalidArgument) as raised:
            keyset.after(paging.encode(values, keyset.fingerprint))
        assert (raised.value.reason, raised.value.violations[0].field) == ("INVALID_PAGE_TOKEN", "page_token"), values
    other = paging.Keyset(ListCursor, "tasks", "user-2", ("running",))
    with pytest.raises(InvalidArgument):
        other.after(keyset.token(cursor))
    checked = paging.Keyset(KeyCursor, "q", check=lambda c: c.key != "x")
    with pytest.raises(InvalidArgument):
        checked.after(checked.token(KeyCursor("x")))
    with pytest.raises(InvalidArgument) as raised:
        keyset.page(Request(page_size=-1), paging.Budget(1 << 20), same)
    assert raised.value.violations[0].field == "page_size"
