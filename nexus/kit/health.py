"""gRPC health (`grpc.health.v1.Health`) for every server: Check, Watch and List.

grpcio-health-checking's asyncio servicer implements Check and Watch but not List, whose
generated base raises NotImplementedError: every server answered List with INTERNAL and logged a
traceback. List here answers from the same statuses Check reads.
"""

from __future__ import annotations

from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2

from nexus.kit.errors import ResourceExhausted

# The health protocol lets a server refuse List with RESOURCE_EXHAUSTED past this many services;
# a Nexus server registers a handful, so the cap only guards against a future misuse.
MAX_LISTED_SERVICES = 100
# types-grpcio-health-checking predates List and does not know its messages.
_ListResponse: Any = health_pb2.HealthListResponse  # type: ignore[attr-defined]


class HealthServicer(health.aio.HealthServicer):
    async def List(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        # The library keeps the statuses in this attribute, which Check and Watch read too.
        statuses: dict[str, int] = dict(self._server_status)  # type: ignore[attr-defined]
        if len(statuses) > MAX_LISTED_SERVICES:
            raise ResourceExhausted(
                f"more than {MAX_LISTED_SERVICES} services report health; use Check per service",
                reason="TOO_MANY_SERVICES",
            )
        return _ListResponse(
            statuses={name: health_pb2.HealthCheckResponse(status=status) for name, status in statuses.items()}
        )
