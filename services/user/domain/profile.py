"""Profile rules: preferences (a JSON merge-patch target with a few known keys), principles,
nickname and avatar URL."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from nexus.kit.validation import JSON, Violations, json_problem

KiB = 1024
MAX_NICKNAME = 64
MAX_AVATAR_URL = 2048
MAX_PRINCIPLES = 50
MAX_PRINCIPLE_LEN = 500
MAX_PREFERENCES_BYTES = 64 * KiB

PREFERENCE_CHOICES: dict[str, tuple[str, ...]] = {
    "theme": ("light", "dark", "system"),
    "risk_level": ("low", "medium", "high"),
    "output_style": ("concise", "detailed"),
}

# RFC 5646 language tags, case-insensitive. The primary subtag must have 2-3 letters (ISO 639):
# the 4-8 letter forms are well-formed but reserved or unassigned, and accepting them would let
# "english" through. Irregular grandfathered tags are not accepted.
_ALNUM = "[a-z0-9]"
_LANGTAG = (
    r"[a-z]{2,3}(?:-[a-z]{3}){0,3}"  # language (with extlangs)
    r"(?:-[a-z]{4})?"  # script
    r"(?:-(?:[a-z]{2}|[0-9]{3}))?"  # region
    rf"(?:-(?:{_ALNUM}{{5,8}}|[0-9]{_ALNUM}{{3}}))*"  # variants
    rf"(?:-[0-9a-wyz](?:-{_ALNUM}{{2,8}})+)*"  # extensions
    rf"(?:-x(?:-{_ALNUM}{{1,8}})+)?"  # private use
)
BCP47 = re.compile(rf"(?:{_LANGTAG}|x(?:-{_ALNUM}{{1,8}})+)", re.IGNORECASE)
MAX_LANGUAGE_TAG = 64


def merge_patch(target: JSON, patch: JSON) -> JSON:
    """RFC 7386: objects merge recursively, null removes a member, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    result: dict[str, JSON] = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def check_preferences(v: Violations, field: str, preferences: dict[str, JSON]) -> None:
    """Known keys must hold known values; unknown keys are kept as they are."""
    for key, choices in PREFERENCE_CHOICES.items():
        if key in preferences:
            value = preferences[key]
            v.check(value in choices, f"{field}.{key}", f"must be one of {', '.join(choices)}")
    if "language" in preferences:
        language = preferences["language"]
        v.check(
            isinstance(language, str) and len(language) <= MAX_LANGUAGE_TAG and BCP47.fullmatch(language) is not None,
            f"{field}.language",
            "must be a BCP 47 language tag such as en, zh-Hans or pt-BR",
        )
    problem = json_problem(preferences, max_bytes=MAX_PREFERENCES_BYTES)
    if problem:
        v.add(field, problem)


def check_principles(v: Violations, field: str, principles: list[str]) -> list[str]:
    if len(principles) > MAX_PRINCIPLES:
        v.add(field, f"must hold at most {MAX_PRINCIPLES} principles, got {len(principles)}")
        return principles
    for index, principle in enumerate(principles):
        v.text(f"{field}[{index}]", principle, max_len=MAX_PRINCIPLE_LEN, required=True)
    return principles


def check_nickname(v: Violations, field: str, nickname: str) -> str:
    return v.text(field, nickname.strip(), max_len=MAX_NICKNAME, required=True)


def check_avatar_url(v: Violations, field: str, url: str) -> str | None:
    """An absolute http(s) URL, or None for empty."""
    if not url:
        return None
    before = len(v.items)
    v.text(field, url, max_len=MAX_AVATAR_URL)
    if len(v.items) > before:
        return None
    try:
        parts = urlsplit(url)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname) and not any(c.isspace() for c in url)
    except ValueError:
        ok = False
    v.check(ok, field, "must be an absolute http or https URL")
    return url
