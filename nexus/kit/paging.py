"""Opaque page tokens (AIP-158).

A token carries the keyset cursor of the last row served plus a fingerprint of the query it
belongs to, so a token replayed against different filters (or another caller) is rejected
instead of silently paging through the wrong list.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Sequence

from nexus.kit.errors import FieldViolation, InvalidArgument

Cursor = list[str | int | float | bool | None]

_MAX_TOKEN_LEN = 2048


def query_fingerprint(*parts: object) -> str:
    """A short stable digest of everything that defines the list (caller, filters, order)."""
    raw = json.dumps([str(p) for p in parts], separators=(",", ":"))
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def encode(cursor: Sequence[str | int | float | bool | None], fingerprint: str) -> str:
    raw = json.dumps([fingerprint, list(cursor)], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode(token: str, fingerprint: str) -> Cursor | None:
    """The cursor in `token`, or None for an empty token (the first page)."""
    if not token:
        return None
    bad = InvalidArgument(
        "page_token is not valid for this request",
        reason="INVALID_PAGE_TOKEN",
        violations=[FieldViolation("page_token", "is malformed, expired, or from a request with other filters")],
    )
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
