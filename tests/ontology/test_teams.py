"""Teams through a real channel: ordered agent participants, status, config, and ownership
(system teams by admins, visible to all; user teams private to their owner)."""

from __future__ import annotations

import uuid
from typing import Any

import grpc
from google.protobuf import field_mask_pb2, struct_pb2

from nexus.kit.validation import struct_to_dict
from nexus.ontology.v1 import ontology_pb2 as pb
from tests.ontology.conftest import Ontology, unique
from tests.support import rpc_error


def config(**values: Any) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(values)
    return s


async def test_a_team_keeps_its_participants_in_order_with_roles_and_config(ontology: Ontology) -> None:
    lead, editor = await ontology.agent(), await ontology.agent()
    team = await ontology.stub.CreateTeam(
        pb.CreateTeamRequest(
            team=pb.Team(
                name="Research desk",
                participants=[
                    pb.Participant(agent_id=lead.id, role="lead", config=config(depth="deep")),
                    pb.Participant(agent_id=editor.id),
                ],
                config=config(handoff="sequential", max_rounds=3),
            )
        ),
        metadata=ontology.admin,
    )
    assert uuid.UUID(team.id) and team.owner_user_id == ""
    assert team.status == pb.TEAM_STATUS_ACTIVE
    assert [(p.agent_id, p.role) for p in team.participants] == [(lead.id, "lead"), (editor.id, "")]
    assert struct_to_dict(team.participants[0].config) == {"depth": "deep"}
    assert struct_to_dict(team.config) == {"handoff": "sequential", "max_rounds": 3}
    assert await ontology.stub.GetTeam(pb.GetTeamRequest(team_id=team.id), metadata=ontology.user().md) == team


async def test_participants_must_be_existing_agents(ontology: Ontology) -> None:
    agent = await ontology.agent()
    request = pb.CreateTeamRequest(
        team=pb.Team(
            name="t", participants=[pb.Participant(agent_id=agent.id), pb.Participant(agent_id=unique("ghost"))]
        )
    )
    failure = await rpc_error(ontology.stub.CreateTeam(request, metadata=ontology.admin))
    assert (failure.code, failure.reason, failure.fields) == (
        grpc.StatusCode.NOT_FOUND,
        "AGENT_NOT_FOUND",
        {"team.participants[1].agent_id"},
    )


async def test_a_users_team_is_private_to_them(ontology: Ontology) -> None:
    agent = await ontology.agent()
    owner, other = ontology.user(), ontology.user()
    team = await ontology.stub.CreateTeam(
        pb.CreateTeamRequest(team=pb.Team(name="mine", participants=[pb.Participant(agent_id=agent.id)])),
        metadata=owner.md,
    )
    assert team.owner_user_id == owner.id
    for call in (
        ontology.stub.GetTeam(pb.GetTeamRequest(team_id=team.id), metadata=other.md),
        ontology.stub.UpdateTeam(pb.UpdateTeamRequest(team=pb.Team(id=team.id, name="x")), metadata=other.md),
        ontology.stub.DeleteTeam(pb.DeleteTeamRequest(team_id=team.id), metadata=other.md),
        ontology.stub.GetTeam(pb.GetTeamRequest(team_id=team.id), metadata=ontology.reader),
    ):
        failure = await rpc_error(call)
        assert (failure.code, failure.reason) == (grpc.StatusCode.NOT_FOUND, "TEAM_NOT_FOUND")
    mine = await ontology.stub.ListTeams(pb.ListTeamsRequest(ownership=pb.OWNERSHIP_MINE), metadata=owner.md)
    assert [t.id for t in mine.teams] == [team.id]
    theirs = await ontology.stub.ListTeams(pb.ListTeamsRequest(page_size=1000), metadata=other.md)
    assert team.id not in {t.id for t in theirs.teams}


async def test_system_teams_are_written_only_by_admins(ontology: Ontology) -> None:
    team = await ontology.stub.CreateTeam(pb.CreateTeamRequest(team=pb.Team(name="sys")), metadata=ontology.admin)
    user = ontology.user()
    failure = await rpc_error(
        ontology.stub.UpdateTeam(pb.UpdateTeamRequest(team=pb.Team(id=team.id, name="x")), metadata=user.md)
    )
    assert (failure.code, failure.reason) == (grpc.StatusCode.PERMISSION_DENIED, "TEAM_READ_ONLY")
    failure = await rpc_error(ontology.stub.DeleteTeam(pb.DeleteTeamRequest(team_id=team.id), metadata=user.md))
    assert failure.code == grpc.StatusCode.PERMISSION_DENIED
    failure = await rpc_error(
        ontology.stub.CreateTeam(pb.CreateTeamRequest(team=pb.Team(name="s")), metadata=ontology.reader)
    )
    assert (failure.code, failure.reason) == (grpc.StatusCode.PERMISSION_DENIED, "MISSING_SCOPE")
    listed = await ontology.stub.ListTeams(
        pb.ListTeamsRequest(ownership=pb.OWNERSHIP_SYSTEM, page_size=1000), metadata=user.md
    )
    assert team.id in {t.id for t in listed.teams} and all(t.owner_user_id == "" for t in listed.teams)


async def test_update_replaces_participants_and_status_and_checks_the_etag(ontology: Ontology) -> None:
    a, b = await ontology.agent(), await ontology.agent()
    owner = ontology.user()
    team = await ontology.stub.CreateTeam(
        pb.CreateTeamRequest(team=pb.Team(name="t", participants=[pb.Participant(agent_id=a.id)])), metadata=owner.md
    )
    updated = await ontology.stub.UpdateTeam(
        pb.UpdateTeamRequest(
            team=pb.Team(
                id=team.id,
                etag=team.etag,
                status=pb.TEAM_STATUS_ERROR,
                participants=[pb.Participant(agent_id=b.id, role="solo"), pb.Participant(agent_id=a.id)],
            ),
            update_mask=field_mask_pb2.FieldMask(paths=["status", "participants"]),
        ),
        metadata=owner.md,
    )
    assert updated.status == pb.TEAM_STATUS_ERROR and updated.name == "t"
    assert [p.agent_id for p in updated.participants] == [b.id, a.id]
    failure = await rpc_error(
        ontology.stub.UpdateTeam(
            pb.UpdateTeamRequest(team=pb.Team(id=team.id, name="late", etag=team.etag)), metadata=owner.md
        )
    )
    assert (failure.code, failure.reason) == (grpc.StatusCode.ABORTED, "ETAG_MISMATCH")
    failure = await rpc_error(
        ontology.stub.UpdateTeam(
            pb.UpdateTeamRequest(team=pb.Team(id=team.id), update_mask=field_mask_pb2.FieldMask(paths=["status"])),
            metadata=owner.md,
        )
    )
    assert failure.fields == {"team.status"}
    await ontology.stub.DeleteTeam(pb.DeleteTeamRequest(team_id=team.id, etag=updated.etag), metadata=owner.md)
    failure = await rpc_error(ontology.stub.GetTeam(pb.GetTeamRequest(team_id=team.id), metadata=owner.md))
    assert failure.code == grpc.StatusCode.NOT_FOUND


async def test_list_pages_through_teams(ontology: Ontology) -> None:
    owner = ontology.user()
    created = [
        (await ontology.stub.CreateTeam(pb.CreateTeamRequest(team=pb.Team(name=f"t{i}")), metadata=owner.md)).id
        for i in range(3)
    ]
    seen, token = [], ""
    while True:
        page = await ontology.stub.ListTeams(
            pb.ListTeamsRequest(ownership=pb.OWNERSHIP_MINE, page_size=2, page_token=token), metadata=owner.md
        )
        seen += [t.id for t in page.teams]
        token = page.next_page_token
        if not token:
            break
    assert seen == sorted(created)
