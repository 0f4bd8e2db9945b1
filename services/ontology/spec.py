"""The Ontology service as the platform sees it: its name, port, schema, migrations and scopes,
and how to build it. Light on purpose: its own modules load only in a process that builds or
prepares it (its scopes module is plain data)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from migrations import history
from nexus.kit.spec import ServiceSpec
from services.ontology.domain.scopes import SCOPES

if TYPE_CHECKING:
    from nexus.kit.config import Settings
    from nexus.kit.server import Resources, ServiceDefinition


async def build(resources: Resources) -> ServiceDefinition:
    from services.ontology.app import build

    return await build(resources)


async def prepare_local(settings: Settings) -> None:
    from services.ontology.app import prepare_local

    await prepare_local(settings)


SPEC = ServiceSpec(
    name="ontology",
    default_port=50052,
    build=build,
    schema="ontology",
    migrations=history("ontology"),
    scopes=SCOPES,
    prepare_local=prepare_local,
)
