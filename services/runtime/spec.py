"""The Runtime service as the platform sees it: its name, port, schema, migrations and scopes,
and how to build it. Light on purpose: its own modules load only in a process that builds or
prepares it (its scopes module is plain data)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from migrations import history
from nexus.kit.spec import ServiceSpec
from services.runtime.domain.scopes import SCOPES

if TYPE_CHECKING:
    from nexus.kit.server import Resources, ServiceDefinition


async def build(resources: Resources) -> ServiceDefinition:
    from services.runtime.app import build

    return await build(resources)


SPEC = ServiceSpec(
    name="runtime",
    default_port=50053,
    build=build,
    schema="runtime",
    extensions=("pg_trgm",),
    migrations=history("runtime"),
    scopes=SCOPES,
)
