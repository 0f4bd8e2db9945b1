"""Admission: which calls a server starts, and how it refuses the others (DESIGN §2, §5 Limits).

gRPC core answers CANCELLED to every call it cannot hand to the application: a call still waiting
in its backlog when the server stops, or one that arrives with the backlog past
`grpc.server.max_pending_requests`. CANCELLED reads as the client's own doing, and clients resume
only on UNAVAILABLE. So the kit refuses first, with a status that says what to do:

- **Overload.** At most `max_inflight_calls` unary (and client-streaming) calls run at once, and at
  most `max_open_streams` response streams are open. Past either budget a call is answered
  RESOURCE_EXHAUSTED with RetryInfo at once, before authentication or any work. The budgets are
  separate so that long-lived event streams never eat the budget of unary calls. (grpc.aio's own
  `maximum_concurrent_rpcs` counts both together and answers without RetryInfo.) The server sets
  core's backlog limit far above these budgets, so core never refuses before the kit does.
- **Shutdown.** `close()` makes every new call answer UNAVAILABLE with RetryInfo, and ends the open
  streams with UNAVAILABLE so their clients resume elsewhere, while the unary calls in flight
  finish. `settled()` waits for those calls and for arrivals to stop; only then does the server
  stop the gRPC server, whose backlog is empty by then. A call still running when the grace ends is
  interrupted (`interrupt()`) and answers UNAVAILABLE: it may have taken effect, so clients retry
  with the same request id or client key.

Health is never refused: a probe must see NOT_SERVING during a shutdown, and be answered under
overload. Its watches still end with the other streams once the server closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Collection
from typing import Any

import grpc

from nexus.kit.errors import ResourceExhausted, Unavailable
from nexus.kit.interceptors import StreamBehavior, UnaryBehavior, _Wrapping

# After the last call arrived, how long a closing server waits for more before it stops. Calls a
# client sent before it learnt of the shutdown keep arriving for a moment; each one that arrives
# while the gRPC server still runs is answered UNAVAILABLE instead of being cancelled by core.
QUIET_S = 0.1
# How long calls interrupted at the end of the grace get to send their UNAVAILABLE.
INTERRUPT_S = 0.5
# Never refused (see the module's documentation); their streams still end on shutdown.
EXEMPT_PREFIXES = ("/grpc.health.v1.Health/",)
INTERRUPTED_STREAM = "the server is shutting down; reconnect (to another replica) and resume"
INTERRUPTED_CALL = (
    "the server stopped before this call finished; retry (a retry with the same request id or client key is safe)"
)


class AdmissionInterceptor(_Wrapping):
    """The gate every call passes after the error interceptor and before auth (see above)."""

    def __init__(
        self,
        *,
        max_inflight_calls: int,
        max_open_streams: int,
        retry_after_s: float,
        exempt_prefixes: Collection[str] = EXEMPT_PREFIXES,
    ) -> None:
        super().__init__()
        self._max_calls = max_inflight_calls
        self._max_streams = max_open_streams
        self._retry_after_s = retry_after_s
        self._exempt = tuple(exempt_prefixes)
        self._calls: set[asyncio.Task[Any]] = set()
        self._streams: set[asyncio.Task[Any]] = set()
        # Exempt streams (health watches): never refused, but ended like the others on shutdown.
        self._watches: set[asyncio.Task[Any]] = set()
        # Tasks this interceptor cancelled itself: their CancelledError is not the client's.
        self._interrupted: set[asyncio.Task[Any]] = set()
        self._closed = False
        self._last_arrival = time.monotonic()
        self._idle = asyncio.Event()

    @property
    def inflight_calls(self) -> int:
        return len(self._calls)

    @property
    def open_streams(self) -> int:
        return len(self._streams)

    # -- shutdown ---------------------------------------------------------------------------------

    async def drain(self, deadline: float) -> None:
        """Closes, then waits for the calls in flight until `deadline` (time.monotonic()); those
        still running then are interrupted."""
        self.close()
        if not await self.settled(deadline):
            self.interrupt()
            await self.settled(time.monotonic() + INTERRUPT_S)

    def close(self) -> None:
        """From now on every call is refused with UNAVAILABLE; open streams end with UNAVAILABLE."""
        self._closed = True
        self._cancel(self._streams | self._watches)

    def interrupt(self) -> None:
        """Ends the unary calls still running (the grace is over) with UNAVAILABLE."""
        self._cancel(self._calls)

    def _cancel(self, tasks: set[asyncio.Task[Any]]) -> None:
        for task in tasks:
            self._interrupted.add(task)
            task.cancel()

    def _busy(self) -> bool:
        return bool(self._calls or self._streams or self._watches)

    async def settled(self, deadline: float) -> bool:
        """After `close()`: waits until nothing runs and no call has arrived for QUIET_S, or until
        `deadline` (time.monotonic()). True when it settled in time."""
        while True:
            now = time.monotonic()
            if self._busy():
                if now >= deadline:
                    return False
                self._idle.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._idle.wait(), deadline - now)
                continue
            quiet_for = now - self._last_arrival
            if quiet_for >= QUIET_S:
                return True
            if now >= deadline:
                return False
            await asyncio.sleep(min(QUIET_S - quiet_for, deadline - now))

    # -- admission --------------------------------------------------------------------------------

    def _admit(self, running: set[asyncio.Task[Any]], budget: int, what: str) -> asyncio.Task[Any]:
        """Refuses the call, or tracks its task in `running` (the caller must `_done` it)."""
        self._last_arrival = time.monotonic()
        if self._closed:
            raise Unavailable(
                "the server is shutting down; retry on another replica",
                reason="SHUTTING_DOWN",
                retry_after_s=self._retry_after_s,
            )
        if len(running) >= budget:
            raise ResourceExhausted(
                f"the server has too many {what} in progress; retry after the delay",
                reason="OVERLOADED",
                retry_after_s=self._retry_after_s,
            )
        return self._track(running)

    @staticmethod
    def _track(running: set[asyncio.Task[Any]]) -> asyncio.Task[Any]:
        task = asyncio.current_task()
        assert task is not None
        running.add(task)
        return task

    def _instead_of_cancelled(self, task: asyncio.Task[Any], message: str) -> Unavailable:
        """What a call this interceptor cancelled itself answers instead of CANCELLED."""
        task.uncancel()
        return Unavailable(message, reason="SHUTTING_DOWN", retry_after_s=self._retry_after_s)

    def _done(self, running: set[asyncio.Task[Any]], task: asyncio.Task[Any]) -> None:
        running.discard(task)
        if self._interrupted:
            self._interrupted.discard(task)
        if self._closed and not self._busy():
            self._idle.set()

    def _is_exempt(self, method: str) -> bool:
        return method.startswith(self._exempt)

    def wrap_unary(self, method: str, behavior: UnaryBehavior) -> UnaryBehavior:
        if self._is_exempt(method):
            return behavior
        calls = self._calls

        async def admitted(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            task = self._admit(calls, self._max_calls, "calls")
            try:
                return await behavior(request, context)
            except asyncio.CancelledError:
                if task not in self._interrupted:
                    raise  # the client cancelled
                raise self._instead_of_cancelled(task, INTERRUPTED_CALL) from None
            finally:
                self._done(calls, task)

        return admitted

    def wrap_stream(self, method: str, behavior: StreamBehavior) -> StreamBehavior:
        exempt = self._is_exempt(method)
        running = self._watches if exempt else self._streams

        async def admitted(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            task = self._track(running) if exempt else self._admit(running, self._max_streams, "open streams")
            try:
                async for item in behavior(request, context):
                    yield item
            except asyncio.CancelledError:
                if task not in self._interrupted:
                    raise  # the client cancelled
                raise self._instead_of_cancelled(task, INTERRUPTED_STREAM) from None
            finally:
                self._done(running, task)

        return admitted

    def wrap_writer_stream(self, method: str, behavior: UnaryBehavior) -> UnaryBehavior:
        exempt = self._is_exempt(method)
        running = self._watches if exempt else self._streams

        async def admitted(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            task = self._track(running) if exempt else self._admit(running, self._max_streams, "open streams")
            try:
                return await behavior(request, context)
            except asyncio.CancelledError:
                if task not in self._interrupted:
                    raise  # the client cancelled
                raise self._instead_of_cancelled(task, INTERRUPTED_STREAM) from None
            finally:
                self._done(running, task)

        return admitted
