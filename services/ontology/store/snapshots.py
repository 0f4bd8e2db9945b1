"""Agent rows as locks, and the `capabilities_snapshot` they carry.

Consistency of the snapshot: every write to an agent's skills or commands first locks the agent
row (FOR NO KEY UPDATE, which still lets foreign-key checks through), then reads the agent's
skills and commands and rewrites the snapshot before it commits. Writers of one agent are
serialized by that lock, and each reads after the previous one committed, so the last snapshot
always describes every committed change.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from nexus.kit.errors import NotFound
from services.ontology.domain import capabilities
from services.ontology.store.tables import agent_t, command_of, command_t, skill_of, skill_t


async def lock_agents(conn: AsyncConnection, agent_ids: Iterable[str]) -> None:
    """Locks agent rows in id order (so two writers never wait on each other in a cycle);
    NOT_FOUND when one does not exist."""
    wanted = sorted(set(agent_ids))
    found = (
        (
            await conn.execute(
                sa.select(agent_t.c.id)
                .where(agent_t.c.id.in_(wanted))
                .order_by(agent_t.c.id)
                .with_for_update(key_share=True)
            )
        )
        .scalars()
        .all()
    )
    missing = [a for a in wanted if a not in set(found)]
    if missing:
        raise NotFound("the agent does not exist", reason="AGENT_NOT_FOUND", metadata={"agent_id": missing[0]})


async def refresh(conn: AsyncConnection, agent_ids: Iterable[str]) -> None:
    """Recomputes the snapshots of these agents inside the caller's transaction."""
    ids = sorted(set(agent_ids))
    await lock_agents(conn, ids)
    for agent_id in ids:
        skills = (
            await conn.execute(
                sa.select(skill_t).where(
                    skill_t.c.agent_id == agent_id,
                    sa.or_(skill_t.c.created_by_user_id.is_(None), skill_t.c.is_public),
                )
            )
        ).all()
        commands = (
            await conn.execute(
                sa.select(command_t).where(command_t.c.agent_id == agent_id, command_t.c.owner_user_id.is_(None))
            )
        ).all()
        snap = capabilities.build([skill_of(r) for r in skills], [command_of(r) for r in commands])
        await conn.execute(
            agent_t.update()
            .where(agent_t.c.id == agent_id)
            .values(capabilities_snapshot=snap.to_json(), snapshot_at=sa.func.clock_timestamp())
        )
