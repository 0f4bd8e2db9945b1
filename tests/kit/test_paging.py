"""kit.paging's size accounting: pages end before the message limit, and continue exactly."""

from __future__ import annotations

from google.protobuf import struct_pb2

from nexus.kit import paging
from nexus.user.v1 import user_pb2


def setting(key: str, size: int) -> user_pb2.Setting:
    return user_pb2.Setting(key=key, value=struct_pb2.Value(string_value="v" * size))


def test_the_budget_never_counts_less_than_the_encoded_response() -> None:
    for size in (0, 1, 126, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152):
        items = [setting(f"k{i}", size) for i in range(3)]
        response = user_pb2.ListSettingsResponse(settings=items, next_page_token="t" * 2048)
        counted = sum(paging.field_bytes(item.ByteSize()) for item in items)
        assert response.ByteSize() <= counted + paging.RESERVED_BYTES, size


def test_a_page_ends_at_the_last_item_that_fits_with_that_items_cursor() -> None:
    items = [setting(f"k{i}", 400) for i in range(10)]
    each = paging.field_bytes(items[0].ByteSize())
    budget = paging.Budget(paging.RESERVED_BYTES + 3 * each)
    page, cursor = paging.fit(items, lambda s: s, budget, next_cursor="after-k9", cursor_of=lambda s: s.key)
    assert [s.key for s in page] == ["k0", "k1", "k2"] and cursor == "k2"
    everything = paging.Budget(8 * 1024 * 1024)
    page, cursor = paging.fit(items, lambda s: s, everything, next_cursor=None, cursor_of=lambda s: s.key)
    assert len(page) == 10 and cursor is None  # all fit: the store's own cursor (the end)


def test_a_page_always_holds_its_first_item_so_a_list_progresses() -> None:
    huge = [setting("huge", 100_000), setting("next", 10)]
    page, cursor = paging.fit(
        huge, lambda s: s, paging.Budget(paging.RESERVED_BYTES + 10), next_cursor=None, cursor_of=lambda s: s.key
    )
    assert [s.key for s in page] == ["huge"] and cursor == "huge"
    # Only the first item of the whole response: after a fixed part, the budget is what is left.
    budget = paging.Budget(paging.RESERVED_BYTES + 100)
    assert budget.take(50) and not budget.take(60)


def test_page_of_serves_size_items_of_size_plus_one_with_a_token_only_when_more_follow() -> None:
    rows = [setting(f"k{i}", 10) for i in range(4)]
    budget = paging.Budget(8 * 1024 * 1024)
    page, token = paging.page_of(rows, 3, lambda s: s, budget, token_of=lambda s: s.key)
    assert [s.key for s in page] == ["k0", "k1", "k2"] and token == "k2"
    page, token = paging.page_of(rows[:3], 3, lambda s: s, paging.Budget(8 * 1024 * 1024), token_of=lambda s: s.key)
    assert len(page) == 3 and token == ""
