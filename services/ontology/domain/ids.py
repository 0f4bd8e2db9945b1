"""Ids the service assigns: user skills and catalog teams."""

from __future__ import annotations

import uuid

# User skills get `usr_<32 hex>` ids from the service, so users never collide with each other or
# with the catalog, and a failed create never tells a user that someone else's id exists.
USER_SKILL_PREFIX = "usr_"
# Catalog teams get stable ids derived from their key, so reloading updates the same row.
_CATALOG_TEAMS = uuid.UUID("5b0c3f4e-8f0a-4c39-9a57-0d0a6f1e7a11")


def new_user_skill_id() -> str:
    return USER_SKILL_PREFIX + uuid.uuid4().hex


def is_reserved_skill_id(skill_id: str) -> bool:
    return skill_id.startswith(USER_SKILL_PREFIX)


def new_team_id() -> str:
    return str(uuid.uuid4())


def catalog_team_id(key: str) -> str:
    return str(uuid.uuid5(_CATALOG_TEAMS, key))
