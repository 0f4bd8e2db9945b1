"""Large skills and teams never make their lists unreadable (DESIGN §5): a skill's definition may
hold 256 KiB and a team's config about 1 MB, and a page of them ends before the message limit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from nexus.kit.channels import open_channel
from nexus.kit.config import Settings
from nexus.kit.server import NexusServer
from nexus.ontology.v1 import ontology_pb2 as pb
from nexus.ontology.v1 import ontology_pb2_grpc as pb_grpc
from tests.ontology.conftest import Ontology, unique
from tests.pages import MEGABYTE_TEXT, page_through


@pytest.fixture(scope="module")
async def wide(settings: Settings, ontology_server: NexusServer) -> AsyncIterator[Any]:
    channel = open_channel(settings, ontology_server.address)
    yield pb_grpc.OntologyServiceStub(channel)
    await channel.close()


async def test_forty_skills_of_250_kb_page_through_each_once(wide: Any, ontology: Ontology, settings: Settings) -> None:
    agent = await ontology.agent()
    user = ontology.user()
    created = []
    for i in range(40):
        step = pb.Step(id="s", action="message")
        step.args.update({"text": "k" * 250_000})
        skill = pb.Skill(agent_id=agent.id, name=f"big {i}", definition=pb.SkillDefinition(steps=[step]))
        created.append((await wide.CreateSkill(pb.CreateSkillRequest(skill=skill), metadata=user.md)).id)

    async def fetch(token: str) -> Any:
        request = pb.ListSkillsRequest(agent_id=agent.id, ownership=pb.OWNERSHIP_MINE, page_size=1000, page_token=token)
        return await wide.ListSkills(request, metadata=user.md)

    ids, pages = await page_through(fetch, lambda r: r.skills, lambda s: s.id, limit=settings.max_message_bytes)
    assert sorted(ids) == sorted(created) and pages > 1


async def test_nine_teams_with_1_mb_configs_page_through_each_once(
    wide: Any, ontology: Ontology, settings: Settings
) -> None:
    agent = await ontology.agent()
    user = ontology.user()
    created = []
    for i in range(9):
        team = pb.Team(name=unique("team"), participants=[pb.Participant(agent_id=agent.id, role="lead")])
        team.config.update({"brief": MEGABYTE_TEXT, "n": i})
        created.append((await wide.CreateTeam(pb.CreateTeamRequest(team=team), metadata=user.md)).id)

    async def fetch(token: str) -> Any:
        request = pb.ListTeamsRequest(ownership=pb.OWNERSHIP_MINE, page_size=1000, page_token=token)
        return await wide.ListTeams(request, metadata=user.md)

    ids, pages = await page_through(fetch, lambda r: r.teams, lambda t: t.id, limit=settings.max_message_bytes)
    assert sorted(ids) == sorted(created) and pages > 1
