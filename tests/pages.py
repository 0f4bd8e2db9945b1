"""Paging through lists of large items, as a client with the platform's message limit does."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from google.protobuf.message import Message

MiB = 1024 * 1024
# About 1 MB of JSON text: under validation's 1 MiB, so nine of them overflow an 8 MiB message.
MEGABYTE_TEXT = "m" * 1_000_000

Fetch = Callable[[str], Awaitable[Message]]


async def page_through(
    fetch: Fetch, items: Callable[[Any], Sequence[Any]], key: Callable[[Any], str], *, limit: int, max_pages: int = 100
) -> tuple[list[str], int]:
    """Every item's key, in order, over all pages from the first; and the number of pages.
    Each page must fit the message limit and hold at least one item (a list progresses)."""
    keys: list[str] = []
    token = ""
    for pages in range(1, max_pages + 1):
        reply: Any = await fetch(token)
        assert reply.ByteSize() <= limit, f"page {pages} is {reply.ByteSize()} bytes"
        page = items(reply)
        keys += [key(item) for item in page]
        token = reply.next_page_token
        if not token:
            return keys, pages
        assert page, f"page {pages} is empty but not the last"
    raise AssertionError(f"more than {max_pages} pages")
