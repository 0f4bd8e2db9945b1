"""The gateway as the platform sees it: its name and port, and how to build it (no database).
Light on purpose: the gateway's own modules load only in a process that builds it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nexus.kit.spec import ServiceSpec

if TYPE_CHECKING:
    from nexus.kit.server import Resources, ServiceDefinition


async def build(resources: Resources) -> ServiceDefinition:
    from gateway.app import build

    return await build(resources)


SPEC = ServiceSpec(name="gateway", default_port=50050, default_http_port=50080, build=build)
