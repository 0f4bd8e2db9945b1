"""Page tokens of the runtime's lists: the keyset cursor a token holds, and the one answer to a
token that does not belong to the request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from nexus.kit import paging, validation
from nexus.kit.errors import FieldViolation, InvalidArgument

W = TypeVar("W")


@dataclass(frozen=True, slots=True)
class Listing(Generic[W]):
    """A List request, checked: what it lists (`where`), how many, and after which keyset."""

    where: W
    limit: int
    cursor: list[Any] | None


def bad_token() -> InvalidArgument:
    return InvalidArgument(
        "page_token is not valid for this request",
        reason="INVALID_PAGE_TOKEN",
        violations=[FieldViolation("page_token", "is malformed, expired, or from another request")],
    )


def uuid_cursor(cursor: list[Any], *kinds: type) -> bool:
    """A decoded keyset cursor: the given scalar kinds, then a UUID."""
    if len(cursor) != len(kinds) + 1 or not isinstance(cursor[-1], str) or not validation._UUID.match(cursor[-1]):
        return False
    for value, kind in zip(cursor, kinds, strict=False):
        if kind is int and (type(value) is not int or not 0 <= value < 2**62):
            return False
        if kind is float and (type(value) not in (int, float) or not 0 <= value <= 1):
            return False
        if kind is bool and type(value) is not bool:
            return False
    return True


def owned(kind: str, page_size: int, page_token: str, user_id: str) -> Listing[str]:
    """A list of the caller's own `kind` (sessions, schedules): newest first, after the token's keyset."""
    limit = validation.page_size(page_size)
    cursor = paging.decode(page_token, paging.query_fingerprint(kind, user_id))
    if cursor is not None and not uuid_cursor(cursor, int):
        raise bad_token()
    return Listing(user_id, limit, cursor)


def owned_next_token(kind: str, user_id: str, cursor: list[Any] | None) -> str:
    return "" if cursor is None else paging.encode(cursor, paging.query_fingerprint(kind, user_id))
