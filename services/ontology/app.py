"""The ontology service: agents, skills, slash commands and teams (`nexus.ontology.v1`)."""

from __future__ import annotations

import grpc

from nexus.kit.config import Settings
from nexus.kit.idempotency import RequestLog
from nexus.kit.server import Resources, ServiceDefinition
from nexus.ontology.v1 import ontology_pb2, ontology_pb2_grpc
from services.ontology.servicer import OntologyServicer
from services.ontology.store.agents import AgentStore
from services.ontology.store.commands import CommandStore
from services.ontology.store.skills import SkillStore
from services.ontology.store.tables import request_log_t
from services.ontology.store.teams import TeamStore

DOMAIN = "nexus.ontology.v1"
SERVICE_NAME = ontology_pb2.DESCRIPTOR.services_by_name["OntologyService"].full_name


async def build(resources: Resources) -> ServiceDefinition:
    db = resources.database("ontology")
    requests = RequestLog(db, request_log_t, ttl_s=resources.settings.request_id_ttl_s)
    servicer = OntologyServicer(
        AgentStore(db, requests),
        SkillStore(db, requests),
        CommandStore(db, requests),
        TeamStore(db, requests),
        resources.settings.max_message_bytes,
    )
    pruning = requests.pruner()

    def register(server: grpc.aio.Server) -> None:
        ontology_pb2_grpc.add_OntologyServiceServicer_to_server(servicer, server)

    return ServiceDefinition(
        name="ontology",
        domain=DOMAIN,
        register=register,
        service_names=[SERVICE_NAME],
        on_start=[pruning.start],
        on_stop=[pruning.stop],
    )


async def prepare_local(settings: Settings) -> None:
    """`nexus up`: load the seed catalog (idempotent) once migrations have run."""
    from services.ontology import catalog

    changes = await catalog.load(settings)
    print(f"catalog: {catalog.describe(changes)}", flush=True)
