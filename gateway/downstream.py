"""How the gateway calls the services: as the caller, within the caller's deadline.

Every downstream call carries the caller's own token (`kit.auth.forwarded_metadata`), so each
service authorizes the real caller and the gateway opens no hole (DESIGN §2). Every downstream call
gets the time remaining on the incoming call, capped for unary calls, so a client's deadline
bounds the whole composition and an abandoned call does not leave work running downstream.
Errors are not caught here: a downstream `AioRpcError` propagates, and the kit's error interceptor
passes its code, message and details through unchanged.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from nexus.kit.auth import caller, forwarded_metadata
from nexus.kit.errors import PermissionDenied
from nexus.kit.ratelimit import forwarded_address
from nexus.kit.server import Resources
from nexus.ontology.v1 import ontology_pb2_grpc
from nexus.runtime.v1 import artifact_pb2_grpc, runtime_pb2_grpc, session_pb2_grpc, workspace_pb2_grpc
from nexus.user.v1 import user_pb2_grpc

Metadata = tuple[tuple[str, str], ...]
T = TypeVar("T")

# One downstream unary call is a read or a small write; a service slower than this is treated as
# failed even when the client would wait longer (sign-up's Argon2id hash queue included).
UNARY_CAP_S = 15.0


def downstream_timeout(remaining: float | None, cap: float | None) -> float | None:
    """The timeout of a downstream call: what is left of the caller's deadline, at most `cap`.
    None (no deadline) only when the caller set none and there is no cap."""
    if remaining is None:
        return cap
    remaining = max(remaining, 0.0)
    return remaining if cap is None else min(remaining, cap)


@dataclass(frozen=True)
class Scope:
    """One incoming call, as its downstream calls see it: whose token, and until when."""

    metadata: Metadata
    # time.monotonic() at which the caller's deadline passes; None when the caller set none.
    deadline: float | None

    @classmethod
    def of(cls, context: Any, *, public: bool = False) -> Scope:
        """The scope of the current call. Public methods (sign-in…) call downstream without a
        token, naming the client's address instead: the user service limits attempts per client,
        and believes the address only from a trusted relay (NEXUS_TRUSTED_RELAYS).

        The gateway serves people, so every method that needs a token needs a user's. A service
        token is refused here (USER_TOKEN_REQUIRED) rather than forwarded: downstream it would be
        told about a worker or admin scope it never needed."""
        if not public and not caller().is_user:
            raise PermissionDenied("this call needs a user's access token", reason="USER_TOKEN_REQUIRED")
        remaining = context.time_remaining()
        deadline = None if remaining is None else time.monotonic() + remaining
        return cls(forwarded_address(context) if public else forwarded_metadata(), deadline)

    def _remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    @property
    def timeout(self) -> float | None:
        """For a unary call: the caller's remaining time, at most UNARY_CAP_S."""
        return downstream_timeout(self._remaining(), UNARY_CAP_S)

    @property
    def stream_timeout(self) -> float | None:
        """For a stream: the caller's remaining time, uncapped; None keeps it open until the task
        ends or the caller cancels (which cancels the downstream stream too)."""
        return downstream_timeout(self._remaining(), None)


@dataclass(frozen=True)
class Peers:
    """Stubs of the three services on the shared channels of `Resources` (the runtime serves
    tasks, workspaces, artifacts and sessions on one channel)."""

    user: user_pb2_grpc.UserServiceAsyncStub
    ontology: ontology_pb2_grpc.OntologyServiceAsyncStub
    runtime: runtime_pb2_grpc.RuntimeServiceAsyncStub
    workspace: workspace_pb2_grpc.WorkspaceServiceAsyncStub
    artifacts: artifact_pb2_grpc.ArtifactServiceAsyncStub
    sessions: session_pb2_grpc.SessionServiceAsyncStub

    @classmethod
    def connect(cls, resources: Resources) -> Peers:
        runtime = resources.channel("runtime")
        return cls(
            user=user_pb2_grpc.UserServiceStub(resources.channel("user")),
            ontology=ontology_pb2_grpc.OntologyServiceStub(resources.channel("ontology")),
            runtime=runtime_pb2_grpc.RuntimeServiceStub(runtime),
            workspace=workspace_pb2_grpc.WorkspaceServiceStub(runtime),
            artifacts=artifact_pb2_grpc.ArtifactServiceStub(runtime),
            sessions=session_pb2_grpc.SessionServiceStub(runtime),
        )


def _first(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The failure to report: the first that is not a cancellation the group caused itself."""
    leaves: list[BaseException] = []
    stack: list[BaseException] = [group]
    while stack:
        exc = stack.pop(0)
        if isinstance(exc, BaseExceptionGroup):
            stack[:0] = list(exc.exceptions)
        else:
            leaves.append(exc)
    for exc in leaves:
        if not isinstance(exc, asyncio.CancelledError):
            return exc
    return leaves[0]


async def _wait(call: Awaitable[T]) -> T:
    return await call


class Calls:
    """Downstream calls started inside `together()`."""

    def __init__(self, group: asyncio.TaskGroup) -> None:
        self._group = group

    def start(self, call: Awaitable[T]) -> asyncio.Task[T]:
        return self._group.create_task(_wait(call))


@asynccontextmanager
async def together() -> AsyncIterator[Calls]:
    """Runs downstream calls concurrently: all succeed, or the others are cancelled and the first
    failure is raised as it is (an `AioRpcError` stays one, so it passes through unchanged)."""
    try:
        async with asyncio.TaskGroup() as group:
            yield Calls(group)
    except BaseExceptionGroup as failed:
        raise _first(failed) from None
