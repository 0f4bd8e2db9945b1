"""A real server that listens on both loopbacks, so a test has two client addresses: a call to
`v4` arrives from 127.0.0.1 and a call to `v6` from ::1 (what `context.peer()` then reports)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from launch.registry import BY_NAME
from nexus.kit import server as kit_server
from nexus.kit.config import Settings
from nexus.kit.server import NexusServer, Resources


@dataclass
class DualStack:
    server: NexusServer
    v4: str
    v6: str


@asynccontextmanager
async def on_both_loopbacks(name: str, settings: Settings) -> AsyncIterator[DualStack]:
    server = await kit_server.build(BY_NAME[name], Resources(settings))
    # Ports are bound before the server starts; start() adds the 127.0.0.1 one.
    v6_port = server.server.add_insecure_port("[::1]:0")
    await server.start(0)
    try:
        yield DualStack(server, f"127.0.0.1:{server.port}", f"[::1]:{v6_port}")
    finally:
        await server.stop(grace=0.5)
