"""Running the platform on one machine: `nexus up`, and the database set-up the other commands share.

`up` is a small supervisor. Postgres (embedded unless NEXUS_DATABASE_URL is set), bootstrap and
migrations run in this process; each service runs as its own `nexus serve` child process, so the
services use every core and stop independently, exactly as they do in containers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from launch.registry import OWNING, SERVICES
from nexus.kit import config, migrations, postgres
from nexus.kit.channels import open_channel
from nexus.kit.config import Settings
from nexus.kit.spec import ServiceSpec
from nexus.kit.tokens import TokenSigner, ensure_signing_key
from worker import health
from worker import options as worker_options

T = TypeVar("T")


def with_database(settings: Settings, run: Callable[[Settings], T]) -> T:
    """Runs `run` with a database URL: the configured one, or the embedded server, started for
    the duration of the call when no other process is running it."""
    if not settings.embedded:
        return run(settings)
    embedded = postgres.EmbeddedPostgres(settings.data_dir)
    url = embedded.start()
    try:
        return run(settings.with_overrides(database_url=url))
    finally:
        embedded.stop()


def migrate(settings: Settings, service: ServiceSpec | None = None, *, downgrade_to: str | None = None) -> None:
    postgres.bootstrap(settings, OWNING)
    for spec in [service] if service else OWNING:
        if downgrade_to:
            migrations.downgrade(settings, spec, downgrade_to)
        else:
            migrations.upgrade(settings, spec)


async def prepare_local(settings: Settings) -> None:
    """First-run set-up for a single machine: keys in the data dir, then each service's own
    preparation (its spec's `prepare_local`)."""
    ensure_signing_key(settings.resolved_signing_keys_dir)
    for spec in SERVICES:
        if spec.prepare_local is not None:
            await spec.prepare_local(settings)


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    address: str | None = None


def _spawn(name: str, args: list[str], settings: Settings) -> Child:
    log_dir = settings.data_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    env = {**os.environ, **config.to_env(settings)}
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "launch", *args],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # Own process group: Ctrl-C reaches only the supervisor, which stops children in order.
            start_new_session=True,
        )
    return Child(name, process, log_path)


async def check_health(settings: Settings, address: str, service: str = "", timeout_s: float = 3.0) -> str:
    """The server's health status name, or UNREACHABLE."""
    async with open_channel(settings, address) as channel:
        stub: Any = health_pb2_grpc.HealthStub(channel)  # the typeshed stub omits its methods
        try:
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout_s)
        except grpc.aio.AioRpcError as err:
            return "UNREACHABLE" if err.code() == grpc.StatusCode.UNAVAILABLE else err.code().name
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


async def _wait_serving(settings: Settings, child: Child, address: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if child.process.poll() is not None:
            tail = child.log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{child.name} exited with {child.process.returncode}:\n{tail}")
        if await check_health(settings, address, timeout_s=1.0) == "SERVING":
            child.address = address
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{child.name} did not become SERVING within {timeout_s:.0f}s; see {child.log_path}")
        await asyncio.sleep(0.1)


def _heartbeat_path(settings: Settings) -> Path:
    """Where the worker child keeps its heartbeat (NEXUS_WORKER_HEARTBEAT_FILE, else the data
    dir). Malformed worker settings make the child itself exit with the reason."""
    try:
        configured = worker_options.from_env().heartbeat_file
    except config.ConfigError:
        configured = None
    return configured or health.default_path(settings.data_dir)


async def _wait_working(child: Child, heartbeat: Path, timeout_s: float = 30.0) -> None:
    """Until the worker's heartbeat says it works (its loop turns and the runtime answers it)."""
    deadline = time.monotonic() + timeout_s
    while not health.check(heartbeat)[0]:
        if child.process.poll() is not None:
            tail = child.log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{child.name} exited with {child.process.returncode}:\n{tail}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{child.name} did not start working within {timeout_s:.0f}s; see {child.log_path}")
        await asyncio.sleep(0.1)


def _stop(children: list[Child], grace_s: float) -> None:
    for child in reversed(children):
        if child.process.poll() is None:
            child.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s + 3
    for child in reversed(children):
        try:
            child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.process.kill()
            child.process.wait()


async def up(settings: Settings, *, with_worker: bool = True) -> int:
    embedded = postgres.EmbeddedPostgres(settings.data_dir) if settings.embedded else None
    if embedded is not None:
        settings = settings.with_overrides(database_url=embedded.start())
    children: list[Child] = []
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        migrate(settings)
        await prepare_local(settings)
        for spec in SERVICES:
            child = _spawn(spec.name, ["serve", spec.name], settings)
            children.append(child)
            await _wait_serving(settings, child, settings.address(spec.name))
        if with_worker:
            keys_dir = settings.resolved_signing_keys_dir
            signer = TokenSigner(
                ensure_signing_key(keys_dir), issuer=settings.token_issuer, audience=settings.token_audience
            )
            token = signer.mint(
                "service:worker", kind="service", scopes=worker_options.REQUIRED_SCOPES, ttl_s=30 * 24 * 3600
            )
            worker = _spawn("worker", ["worker"], settings.with_overrides(service_token=token))
            children.append(worker)
            await _wait_working(worker, _heartbeat_path(settings))
        print("Nexus is up:")
        for child in children:
            where = child.address or f"pid {child.process.pid}"
            print(f"  {child.name:<9} {where:<22} log {child.log_path}")
            if child.name in settings.http_ports:
                print(f"  {'http':<9} http://{settings.host}:{settings.http_port(child.name)}/  console, Connect, SSE")
        database = f"embedded in {settings.data_dir / 'postgres'}" if embedded else "NEXUS_DATABASE_URL"
        print(f"  postgres  {database}")
        print("Ctrl-C stops everything.", flush=True)
        while not stop.is_set():
            exited = [c for c in children if c.process.poll() is not None]
            if exited:
                print(f"nexus: {exited[0].name} exited unexpectedly; see {exited[0].log_path}", file=sys.stderr)
                return 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=0.5)
        return 0
    except RuntimeError as err:
        print(f"nexus: {err}", file=sys.stderr)
        return 1
    finally:
        print("stopping…", flush=True)
        _stop(children, settings.shutdown_grace_s)
        if embedded is not None:
            embedded.stop()
        print("stopped.", flush=True)
