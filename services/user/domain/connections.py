"""UserConnection rules: names, statuses and the credentials document."""

from __future__ import annotations

import re

from nexus.kit.errors import FailedPrecondition
from nexus.kit.validation import JSON, Violations, json_problem
from services.user.domain.records import ConnectionRecord

STATUSES = ("active", "expired", "revoked")
PROVIDER = re.compile(r"[a-z][a-z0-9_.-]{0,63}")
PROVIDER_HINT = "must be 1-64 characters of a-z, 0-9, '_', '-' or '.', starting with a letter"
MAX_PROVIDER_LEN = 64
MAX_DISPLAY_NAME = 200
MAX_PURPOSE = 200
MAX_CREDENTIALS_BYTES = 64 * 1024


def check_provider(v: Violations, field: str, provider: str) -> str:
    if not provider:
        v.add(field, "is required")
        return provider
    return v.text(field, provider, max_len=MAX_PROVIDER_LEN, pattern=PROVIDER, pattern_hint=PROVIDER_HINT)


def check_display_name(v: Violations, field: str, name: str) -> str:
    return v.text(field, name.strip(), max_len=MAX_DISPLAY_NAME, required=True)


def check_credentials(v: Violations, field: str, credentials: dict[str, JSON]) -> dict[str, JSON]:
    if not credentials:
        v.add(field, "must be a non-empty JSON object")
        return credentials
    problem = json_problem(credentials, max_bytes=MAX_CREDENTIALS_BYTES)
    if problem:
        v.add(field, problem)
    return credentials


def revealable(status: str) -> bool:
    """A revoked grant is never handed to an agent again; an expired one may be refreshed."""
    return status != "revoked"


def check_revealable(record: ConnectionRecord) -> None:
    if not revealable(record.status):
        raise FailedPrecondition("the connection is revoked", reason="CONNECTION_REVOKED")
