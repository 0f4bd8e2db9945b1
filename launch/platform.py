"""Running the platform on one machine: `nexus up`, and the database set-up the other commands share.

`up` is a small supervisor. Postgres (embedded unless NEXUS_DATABASE_URL is set), bootstrap and
migrations run in this process; each service runs as its own `nexus serve` child process, so the
services use every core and stop independently, exactly as they do in containers.

It trusts no server it did not start: every port must be free before anything starts, and a child
counts as serving only when it says so itself, through a pipe, after its server listens. (A health
check on the port cannot tell: another `nexus up` on the same port answers SERVING too.)
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import signal
import socket
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


class StartFailure(RuntimeError):
    """Something `up` needs cannot start; the message says what and why."""


def _port_in_use(host: str, port: int) -> bool:
    """Whether something listens on host:port already. SO_REUSEADDR, as gRPC binds, so a port
    left in TIME_WAIT by a platform that just stopped counts as free."""
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror:
        return False  # a bad host is the server's to report
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as err:
                if err.errno == errno.EADDRINUSE:
                    return True
    return False


def port_problems(settings: Settings) -> list[str]:
    """Why the services cannot have their ports (empty when every one is free and distinct)."""
    problems: list[str] = []
    owners: dict[int, str] = {}
    for spec in SERVICES:
        port = settings.port(spec.name)
        if port in owners:
            problems.append(f"port {port} is given to both {owners[port]} and {spec.name}")
            continue
        owners[port] = spec.name
        if _port_in_use(settings.host, port):
            problems.append(
                f"port {port} is in use: {spec.name} cannot listen on {settings.host}:{port} (another `nexus up`, "
                f"or another program? stop it, or choose another port with NEXUS_{spec.env_name}_PORT)"
            )
    return problems


# What a `nexus serve` child writes to its pipe once it serves.
READY = b"ready\n"


def report_ready(fd: int) -> None:
    """The child's side of the pipe: says it serves, then closes the pipe."""
    with os.fdopen(fd, "wb") as ready:
        ready.write(READY)


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    address: str | None = None
    # The read end of the pipe a `nexus serve` child reports readiness on.
    ready_fd: int | None = None

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-2000:]


def spawn(name: str, args: list[str], settings: Settings, *, ready_pipe: bool = False) -> Child:
    log_dir = settings.data_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    env = {**os.environ, **config.to_env(settings)}
    read_fd, write_fd = os.pipe() if ready_pipe else (None, None)
    extra = ["--ready-fd", str(write_fd)] if write_fd is not None else []
    try:
        with open(log_path, "ab") as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", "launch", *args, *extra],
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                pass_fds=(write_fd,) if write_fd is not None else (),
                # Own process group: Ctrl-C reaches only the supervisor, which stops children in order.
                start_new_session=True,
            )
    finally:
        if write_fd is not None:
            # Only the child holds the write end now: when it exits, the read end sees EOF.
            os.close(write_fd)
    return Child(name, process, log_path, ready_fd=read_fd)


async def check_health(settings: Settings, address: str, service: str = "", timeout_s: float = 3.0) -> str:
    """The server's health status name, or UNREACHABLE."""
    async with open_channel(settings, address) as channel:
        stub: Any = health_pb2_grpc.HealthStub(channel)  # the typeshed stub omits its methods
        try:
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout_s)
        except grpc.aio.AioRpcError as err:
            return "UNREACHABLE" if err.code() == grpc.StatusCode.UNAVAILABLE else err.code().name
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


async def wait_serving(settings: Settings, child: Child, address: str, timeout_s: float = 30.0) -> None:
    """Until the child itself reports that it serves. A child that exits first fails `up` with its
    reason, whatever answers on its port."""
    assert child.ready_fd is not None
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    pipe = os.fdopen(child.ready_fd, "rb", buffering=0)
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
    try:
        said = await asyncio.wait_for(reader.readline(), timeout_s)
    except TimeoutError:
        raise StartFailure(
            f"{child.name} did not start serving within {timeout_s:.0f}s; see {child.log_path}"
        ) from None
    finally:
        transport.close()
    if said == READY:
        child.address = address
        return
    # The pipe closed without a word: the child exited (or is exiting) before it served.
    with contextlib.suppress(subprocess.TimeoutExpired):
        await asyncio.to_thread(child.process.wait, 10.0)
    status = child.process.returncode
    how = "exited" if status is not None else "closed its pipe"
    port = settings.port(child.name)
    if _port_in_use(settings.host, port):
        # Taken after the check before start: the child's bind failed. Say so, not its traceback.
        raise StartFailure(
            f"port {port} is in use: {child.name} cannot listen on {settings.host}:{port}, and {how} "
            f"(status {status}); stop what holds the port or choose another with NEXUS_{child.name.upper()}_PORT"
        )
    raise StartFailure(f"{child.name} {how} before it served (status {status}); its log:\n{child.log_tail()}")


def _heartbeat_path(settings: Settings) -> Path:
    """Where the worker child keeps its heartbeat (NEXUS_WORKER_HEARTBEAT_FILE, else the data
    dir). Malformed worker settings make the child itself exit with the reason."""
    try:
        configured = worker_options.from_env().heartbeat_file
    except config.ConfigError:
        configured = None
    return configured or health.default_path(settings.data_dir)


def _works(child: Child, heartbeat: Path) -> bool:
    """The heartbeat is fresh and it is this child's (another worker may write the same file)."""
    beat = health.read(heartbeat)
    return beat is not None and beat.pid == child.process.pid and health.check(heartbeat)[0]


async def _wait_working(child: Child, heartbeat: Path, timeout_s: float = 30.0) -> None:
    """Until the worker's heartbeat says it works (its loop turns and the runtime answers it)."""
    deadline = time.monotonic() + timeout_s
    while not _works(child, heartbeat):
        if child.process.poll() is not None:
            raise StartFailure(f"{child.name} exited with {child.process.returncode}:\n{child.log_tail()}")
        if time.monotonic() > deadline:
            raise StartFailure(f"{child.name} did not start working within {timeout_s:.0f}s; see {child.log_path}")
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
    problems = port_problems(settings)
    if problems:
        for problem in problems:
            print(f"nexus: {problem}", file=sys.stderr)
        print("nexus: nothing was started", file=sys.stderr)
        return 1
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
            child = spawn(spec.name, ["serve", spec.name], settings, ready_pipe=True)
            children.append(child)
            await wait_serving(settings, child, settings.address(spec.name))
        if with_worker:
            keys_dir = settings.resolved_signing_keys_dir
            signer = TokenSigner(
                ensure_signing_key(keys_dir), issuer=settings.token_issuer, audience=settings.token_audience
            )
            token = signer.mint(
                "service:worker", kind="service", scopes=worker_options.REQUIRED_SCOPES, ttl_s=30 * 24 * 3600
            )
            worker = spawn("worker", ["worker"], settings.with_overrides(service_token=token))
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
    except RuntimeError as err:  # StartFailure, and a database that cannot be prepared
        print(f"nexus: {err}", file=sys.stderr)
        return 1
    finally:
        print("stopping…", flush=True)
        _stop(children, settings.shutdown_grace_s)
        if embedded is not None:
            embedded.stop()
        print("stopped.", flush=True)
