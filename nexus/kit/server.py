"""Server bootstrap shared by every Nexus service (DESIGN §2).

A service describes itself with a `ServiceSpec` (its `spec.py`), which names its
`build(resources) -> ServiceDefinition`. The kit adds everything else: the interceptor chain,
health, reflection, keepalive and size limits, TLS when configured, admission limits, and graceful
shutdown (NOT_SERVING; new calls refused with UNAVAILABLE and streams told to resume elsewhere,
while in-flight calls finish within the grace).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Protocol

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from nexus.kit import reflection
from nexus.kit.admission import AdmissionInterceptor
from nexus.kit.channels import channel_options, open_channel
from nexus.kit.config import Settings
from nexus.kit.db import Database
from nexus.kit.health import HealthServicer
from nexus.kit.http import HttpFrontDoorFactory, HttpServer
from nexus.kit.interceptors import (
    AuthInterceptor,
    ErrorInterceptor,
    RequestLogInterceptor,
)
from nexus.kit.revocations import RevocationFollower
from nexus.kit.tokens import FetchedKeySet, KeySet, LocalKeySet, TokenVerifier

log = logging.getLogger("nexus.server")

# Health and reflection answer without a token, so probes and `buf curl --list-methods` work.
ALWAYS_PUBLIC = ("/grpc.health.v1.Health/", "/grpc.reflection.")


@dataclass
class ServiceDefinition:
    name: str
    # ErrorInfo.domain of every error this service raises: its proto package.
    domain: str
    register: Callable[[grpc.aio.Server], None]
    service_names: Sequence[str]
    # Full method names (`/pkg.Service/Method`) callable without a token.
    public_methods: Collection[str] = ()
    on_start: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    on_stop: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    # What the service serves on its HTTP port beside gRPC (made with the server's authenticator).
    http: HttpFrontDoorFactory | None = None


class Resources:
    """What a service is built from; everything opened here is closed when the server stops."""

    def __init__(self, settings: Settings, verifier: TokenVerifier | None = None) -> None:
        self.settings = settings
        self._databases: dict[str, Database] = {}
        self._channels: dict[str, grpc.aio.Channel] = {}
        self.verifier = verifier or TokenVerifier(
            self._keyset(), issuer=settings.token_issuer, audience=settings.token_audience
        )

    def _keyset(self) -> KeySet:
        keys_dir = self.settings.resolved_signing_keys_dir
        if keys_dir.is_dir() and any(keys_dir.glob("*.pub")):
            return LocalKeySet(keys_dir)
        return FetchedKeySet(self._fetch_user_keys)

    async def _fetch_user_keys(self) -> dict[str, bytes]:
        from nexus.user.v1 import user_pb2, user_pb2_grpc

        stub = user_pb2_grpc.UserServiceStub(self.channel("user"))
        reply = await stub.GetKeySet(user_pb2.GetKeySetRequest(), timeout=5)
        return {key.kid: key.public_key for key in reply.keys}

    def database(self, service: str) -> Database:
        if service not in self._databases:
            self._databases[service] = Database.for_service(self.settings, service)
        return self._databases[service]

    def channel(self, peer: str) -> grpc.aio.Channel:
        """A shared channel to a peer service (`user`, `ontology`, `runtime`)."""
        if peer not in self._channels:
            self._channels[peer] = open_channel(self.settings, self.settings.address(peer))
        return self._channels[peer]

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        for database in self._databases.values():
            await database.close()
        self._channels.clear()
        self._databases.clear()


class Servable(Protocol):
    """What the kit needs to serve a service; a `nexus.kit.spec.ServiceSpec` is one."""

    @property
    def build(self) -> Callable[[Resources], Awaitable[ServiceDefinition]]: ...


class NexusServer:
    def __init__(self, definition: ServiceDefinition, resources: Resources) -> None:
        self.definition = definition
        self.resources = resources
        settings = resources.settings
        self.revocations = RevocationFollower(lambda: resources.channel("user"))
        self.admission = AdmissionInterceptor(
            max_inflight_calls=settings.max_inflight_calls,
            max_open_streams=settings.max_open_streams,
            retry_after_s=settings.retry_after_s,
        )
        self._auth = AuthInterceptor(
            resources.verifier, [*definition.public_methods, *ALWAYS_PUBLIC], self.revocations.revoked
        )
        self.server = grpc.aio.server(
            interceptors=[
                RequestLogInterceptor(definition.name),
                ErrorInterceptor(definition.domain, max_message_bytes=settings.max_message_bytes),
                self.admission,
                self._auth,
            ],
            options=[
                *channel_options(settings),
                ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
                # A second server on a taken port must fail, not silently share it.
                ("grpc.so_reuseport", 0),
                # Calls received but not yet started wait in core's backlog; past its limit (1,000
                # by default) core answers CANCELLED. The kit's admission budgets refuse with
                # RetryInfo long before this is reached.
                ("grpc.server.max_pending_requests", settings.max_pending_calls),
                ("grpc.server.max_pending_requests_hard_limit", settings.max_pending_calls),
            ],
        )
        definition.register(self.server)
        self.health = HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable(self.server, [*definition.service_names, health.SERVICE_NAME])
        self.port = 0
        self.http: HttpServer | None = None
        if definition.http is not None:
            # The HTTP side authenticates through this server's own auth interceptor.
            front_door = definition.http(self._auth)
            self.http = HttpServer(front_door.app, settings, name=definition.name, drain=front_door.drain)

    @property
    def address(self) -> str:
        return f"{self.resources.settings.host}:{self.port}"

    async def start(self, port: int | None = None, *, http_port: int | None = None) -> str:
        settings = self.resources.settings
        target = f"{settings.host}:{settings.port(self.definition.name) if port is None else port}"
        if settings.tls_cert_file and settings.tls_key_file:
            credentials = grpc.ssl_server_credentials(
                [(settings.tls_key_file.read_bytes(), settings.tls_cert_file.read_bytes())]
            )
            self.port = self.server.add_secure_port(target, credentials)
        else:
            self.port = self.server.add_insecure_port(target)
        await self.server.start()
        if settings.reaches("user"):
            self.revocations.start()
        else:
            log.warning(
                "no address for the user service: ended sign-ins are not followed",
                extra={"fields": {"service": self.definition.name}},
            )
        for hook in self.definition.on_start:
            await hook()
        if self.http is not None:
            if http_port is None:
                # Port 0 (tests: any free port) stands for both ports.
                http_port = 0 if port == 0 else settings.http_port(self.definition.name)
            await self.http.start(http_port)
        for name in ["", *self.definition.service_names]:
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info("serving", extra={"fields": {"service": self.definition.name, "address": self.address}})
        return self.address

    async def stop(self, grace: float | None = None) -> None:
        """Stops within `grace` seconds (the setting by default) without answering CANCELLED.

        grpc.aio's own `stop(grace)` cancels every call still in core's backlog, so the kit first
        refuses new calls itself (UNAVAILABLE with RetryInfo) while the server still runs, lets the
        calls in flight finish, and stops the gRPC server only once calls have stopped arriving."""
        grace = self.resources.settings.shutdown_grace_s if grace is None else grace
        deadline = time.monotonic() + grace
        await self.health.enter_graceful_shutdown()
        # A moment for health watchers (load balancers) to see NOT_SERVING before streams end.
        await asyncio.sleep(min(0.5, grace / 2))
        await self.admission.drain(deadline)
        remaining = max(deadline - time.monotonic(), 0.1)
        if self.http is None:
            await self.server.stop(remaining)
        else:
            await asyncio.gather(self.server.stop(remaining), self.http.stop())
        await self.revocations.stop()
        for hook in self.definition.on_stop:
            await hook()
        await self.resources.close()
        log.info("stopped", extra={"fields": {"service": self.definition.name}})


async def build(spec: Servable, resources: Resources) -> NexusServer:
    return NexusServer(await spec.build(resources), resources)


@asynccontextmanager
async def running(
    spec: Servable, settings: Settings, *, port: int = 0, verifier: TokenVerifier | None = None
) -> AsyncIterator[NexusServer]:
    """A started server for the duration of the block (tests use port 0: any free port)."""
    server = await build(spec, Resources(settings, verifier))
    await server.start(port)
    try:
        yield server
    finally:
        await server.stop(grace=1.0)


async def serve_forever(
    spec: Servable,
    settings: Settings,
    *,
    port: int | None = None,
    on_serving: Callable[[NexusServer], None] | None = None,
) -> None:
    """`nexus serve <name>`: runs until SIGINT or SIGTERM, then shuts down gracefully.
    `on_serving` is called once the server listens and reports SERVING (`nexus up` learns from it
    that this process, not another one on the port, is serving)."""
    server = await build(spec, Resources(settings))
    await server.start(port)
    print(f"{server.definition.name} serving on {server.address}", flush=True)
    if server.http is not None:
        print(f"{server.definition.name} serving HTTP on {server.http.address}", flush=True)
    if on_serving is not None:
        on_serving(server)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop()
