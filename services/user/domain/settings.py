"""Settings (seed 000): one JSON value per user and key."""

from __future__ import annotations

import re

from nexus.kit.validation import JSON, Violations, json_problem

# Dotted names such as `ui.sidebar.collapsed` or `notifications.email`.
KEY = re.compile(r"[a-z][a-z0-9_.-]{0,127}")
KEY_HINT = "must be 1-128 characters of a-z, 0-9, '_', '-' or '.', starting with a letter"
MAX_KEY_LEN = 128
MAX_VALUE_BYTES = 64 * 1024


def check_key(v: Violations, field: str, key: str) -> str:
    if not key:
        v.add(field, "is required")
        return key
    return v.text(field, key, max_len=MAX_KEY_LEN, pattern=KEY, pattern_hint=KEY_HINT)


def check_value(v: Violations, field: str, value: JSON) -> JSON:
    problem = json_problem(value, max_bytes=MAX_VALUE_BYTES)
    if problem:
        v.add(field, problem)
    return value
