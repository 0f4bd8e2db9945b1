"""Pages (AIP-158): opaque page tokens, and pages that fit in one message.

A token carries the keyset cursor of the last row served plus a fingerprint of the query it
belongs to, so a token replayed against different filters (or another caller) is rejected
instead of silently paging through the wrong list.

A page ends before the message limit, however large its items (DESIGN §5): a `Budget` counts the
encoded size of what a response holds, and `fit` ends a page at the last item that fits, with the
cursor of that item, so the next page continues exactly there. A page always holds at least one
item, so a list always progresses; an item that alone exceeds the limit is answered with
RESOURCE_EXHAUSTED (RESPONSE_TOO_LARGE) by the error interceptor, never sent to fail in transit.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

from google.protobuf.message import Message

from nexus.kit.errors import FieldViolation, InvalidArgument

Cursor = list[str | int | float | bool | None]
T = TypeVar("T")
M = TypeVar("M", bound=Message)
C = TypeVar("C")

_MAX_TOKEN_LEN = 2048
# Kept free of items in every response: a next_page_token (at most _MAX_TOKEN_LEN) and the few
# small fields a list response has beside its items.
RESERVED_BYTES = 16 * 1024


def invalid_token(field: str = "page_token") -> InvalidArgument:
    return InvalidArgument(
        f"{field} is not valid for this request",
        reason="INVALID_PAGE_TOKEN",
        violations=[FieldViolation(field, "is malformed, expired, or from a request with other filters")],
    )


def query_fingerprint(*parts: object) -> str:
    """A short stable digest of everything that defines the list (caller, filters, order)."""
    raw = json.dumps([str(p) for p in parts], separators=(",", ":"))
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def encode(cursor: Sequence[str | int | float | bool | None], fingerprint: str) -> str:
    raw = json.dumps([fingerprint, list(cursor)], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode(token: str, fingerprint: str, *, field: str = "page_token") -> Cursor | None:
    """The cursor in `token`, or None for an empty token (the first page)."""
    if not token:
        return None
    bad = invalid_token(field)
    if len(token) > _MAX_TOKEN_LEN:
        raise bad
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        fp, cursor = json.loads(raw)
    except (binascii.Error, ValueError, TypeError):
        raise bad from None
    if fp != fingerprint or not isinstance(cursor, list):
        raise bad
    return cursor


def _varint_len(value: int) -> int:
    return max(1, (value.bit_length() + 6) // 7)


def field_bytes(size: int) -> int:
    """What a message of `size` bytes adds to its parent as one (repeated) message field: its
    bytes, their length prefix and a field tag (two bytes cover field numbers up to 2047)."""
    return size + _varint_len(size) + 2


class Budget:
    """The bytes one response may still grow by before it reaches the message limit."""

    def __init__(self, max_message_bytes: int, *, reserved: int = RESERVED_BYTES) -> None:
        self.left = max_message_bytes - reserved
        self.items = 0

    def spend(self, message: Message) -> None:
        """Counts a part every response holds, such as GetMe's profile beside its settings."""
        self.left -= field_bytes(message.ByteSize())

    def take(self, size: int) -> bool:
        """Whether an item of `size` encoded bytes fits; if it does, it is counted. The first
        item of a response always does: a list must progress even past a huge item."""
        cost = field_bytes(size)
        if self.items and cost > self.left:
            return False
        self.left -= cost
        self.items += 1
        return True

    def fill(self, items: Iterable[T], to_proto: Callable[[T], M]) -> list[M]:
        """The messages of `items`, from the first, for as long as they fit."""
        out: list[M] = []
        for item in items:
            message = to_proto(item)
            if not self.take(message.ByteSize()):
                break
            out.append(message)
        return out


def fit(
    items: Sequence[T],
    to_proto: Callable[[T], M],
    budget: Budget,
    *,
    next_cursor: C | None,
    cursor_of: Callable[[T], C],
) -> tuple[list[M], C | None]:
    """One page of `items` (a store's page, with the store's `next_cursor` after its last item)
    that fits `budget`. When it ends early, the cursor is that of the last item it holds."""
    page = budget.fill(items, to_proto)
    if len(page) < len(items):
        return page, cursor_of(items[len(page) - 1])
    return page, next_cursor


def page_of(
    rows: Sequence[T],
    size: int,
    to_proto: Callable[[T], M],
    budget: Budget,
    *,
    token_of: Callable[[T], str],
) -> tuple[list[M], str]:
    """A page of at most `size` items from `rows`, which a store fetched as size + 1 to learn
    whether more follow: the messages that fit, and the token after the last ("" ends the list)."""
    items = rows[:size]
    more = items[-1] if len(rows) > size else None
    page, last = fit(items, to_proto, budget, next_cursor=more, cursor_of=lambda row: row)
    return page, "" if last is None else token_of(last)
