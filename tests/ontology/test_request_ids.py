"""A create's request_id is remembered for a lifetime (NEXUS_REQUEST_ID_TTL_S), then forgotten:
the same id creates again, and the log's entry is pruned."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable

import grpc
import psycopg

from launch.registry import ONTOLOGY
from nexus.kit.config import Settings
from nexus.kit.postgres import service_url
from nexus.kit.server import running
from nexus.ontology.v1 import ontology_pb2 as pb
from nexus.ontology.v1 import ontology_pb2_grpc as pb_grpc
from tests.ontology.conftest import Ontology
from tests.support import eventually


def _entries(settings: Settings, request_id: str) -> int:
    with psycopg.connect(service_url(settings, "ontology", driver="postgresql"), autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM ontology.request_log WHERE request_id = %s", [request_id]).fetchone()
    assert row is not None
    return int(row[0])


async def test_a_request_id_past_its_lifetime_creates_again_and_its_entry_is_pruned(
    settings: Settings, ontology: Ontology, open_channel: Callable[[str], grpc.aio.Channel]
) -> None:
    async with running(ONTOLOGY, dataclasses.replace(settings, request_id_ttl_s=0.5)) as short:
        stub = pb_grpc.OntologyServiceStub(open_channel(short.address))
        user = ontology.user()
        request = pb.CreateTeamRequest(team=pb.Team(name="Remembered a while"), request_id=str(uuid.uuid4()))
        first = await stub.CreateTeam(request, metadata=user.md)

        async def created_again() -> pb.Team | None:
            team = await stub.CreateTeam(request, metadata=user.md)
            return team if team.id != first.id else None

        again = await eventually(created_again, "the request_id to be forgotten")
        assert again.name == first.name

        forgotten = str(uuid.uuid4())
        await stub.CreateTeam(pb.CreateTeamRequest(team=pb.Team(name="Pruned"), request_id=forgotten), metadata=user.md)
        assert _entries(settings, forgotten) == 1
        await eventually(lambda: _entries(settings, forgotten) == 0, "the expired entry to be pruned")
