"""Who sees what, as SQL: the same rules as `domain.access`, for queries that filter many rows."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from services.ontology.domain.access import Viewer
from services.ontology.domain.models import Ownership
from services.ontology.store.tables import command_t, skill_t, team_t


def skill_visible(viewer: Viewer) -> sa.ColumnElement[bool]:
    if viewer.reads_all:
        return sa.true()
    visible = sa.or_(skill_t.c.created_by_user_id.is_(None), skill_t.c.is_public)
    if viewer.user_id is not None:
        visible = sa.or_(visible, skill_t.c.created_by_user_id == viewer.user_id)
    return visible


def command_visible(viewer: Viewer) -> sa.ColumnElement[bool]:
    if viewer.user_id is None:
        return command_t.c.owner_user_id.is_(None)
    return sa.or_(command_t.c.owner_user_id.is_(None), command_t.c.owner_user_id == viewer.user_id)


def team_visible(viewer: Viewer) -> sa.ColumnElement[bool]:
    if viewer.reads_all:
        return sa.true()
    if viewer.user_id is None:
        return team_t.c.owner_user_id.is_(None)
    return sa.or_(team_t.c.owner_user_id.is_(None), team_t.c.owner_user_id == viewer.user_id)


def owned(
    viewer: Viewer, ownership: Ownership, column: sa.ColumnElement[Any], public: sa.ColumnElement[bool] | None = None
) -> sa.ColumnElement[bool]:
    """A list's ownership filter on its owner `column` (NULL: a system object)."""
    if ownership is Ownership.SYSTEM:
        return column.is_(None)
    if ownership is Ownership.MINE:
        return column == viewer.require_user()
    if ownership is Ownership.PUBLIC and public is not None:
        return sa.and_(column.is_not(None), public)
    return sa.true()
