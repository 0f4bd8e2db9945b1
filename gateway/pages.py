"""Pages the gateway composes from the services' pages, ending before the message limit (DESIGN §5).

A service's page fits one message. A gateway response may hold a service's page beside other
parts (GetMe's profile) or several lists (the sidebar), so it may have to end a service's page
early, and the service has no token for "after this item in the middle of my page": its token
continues after the whole page. So the gateway asks again for exactly the items it kept; that
page ends right after them, and its token continues there.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from google.protobuf.message import Message

M = TypeVar("M", bound=Message)

# A page of a service's list: its items from a token, at most a count of them; and the token after.
Fetch = Callable[[str, int], Awaitable[tuple[Sequence[M], str]]]


async def token_after(fetch: Fetch[M], start: str, count: int) -> str:
    """The service's token after the first `count` items of its list from `start`."""
    if count == 0:
        return start
    _, token = await fetch(start, count)
    return token


def same(message: M) -> M:
    """For `paging.Budget.fill` over messages a service already built."""
    return message
