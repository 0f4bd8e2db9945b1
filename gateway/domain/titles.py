"""Titles of the tasks the gateway creates (the sidebar shows them)."""

from __future__ import annotations

MAX_TITLE = 120
_ELLIPSIS = "…"


def shorten(text: str, limit: int = MAX_TITLE) -> str:
    """One line of at most `limit` characters: whitespace collapsed, cut at a word if possible."""
    line = " ".join(text.split())
    if len(line) <= limit:
        return line
    cut = line[: limit - 1]
    space = cut.rfind(" ")
    if space >= limit // 2:
        cut = cut[:space]
    return cut.rstrip() + _ELLIPSIS


def command_title(skill_name: str, trigger: str, text: str) -> str:
    """`Scan a website · https://acme.com depth=deep`: the skill, then the command's arguments."""
    head = " ".join(skill_name.split()) or trigger
    parts = text.strip().split(None, 1)
    arguments = parts[1] if len(parts) == 2 else ""
    return shorten(f"{head} · {arguments}" if arguments else head)


def chat_title(text: str) -> str:
    """The start of the first message."""
    return shorten(text) or "Chat"
