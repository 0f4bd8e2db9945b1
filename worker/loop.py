"""The worker process: claim tasks for its agents, drive each under a renewed lease, keep a
heartbeat, and stop gracefully. One bad task never stops the worker: everything a task raises is
caught and logged where the task is driven."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from pathlib import Path
from typing import NoReturn

import grpc
from google.protobuf import duration_pb2

from nexus.contract.leases import MAX_CLAIM_AGENTS, MIN_LEASE_S
from nexus.kit.auth import bearer_metadata
from nexus.kit.channels import open_channel
from nexus.kit.config import ConfigError, Settings
from nexus.kit.errors import details_of
from nexus.ontology.v1 import ontology_pb2_grpc
from nexus.runtime.v1 import artifact_pb2_grpc, runtime_pb2, runtime_pb2_grpc, workspace_pb2_grpc
from worker import health
from worker.errors import Transient
from worker.leased import CALL_TIMEOUT_S, LeasedTask, Stubs, classify
from worker.options import Options
from worker.runner import Outcome, Runner

log = logging.getLogger("nexus.worker")

# Claim failures are logged at most this often (a down runtime is not a log flood).
COMPLAINT_EVERY_S = 10.0
HEARTBEAT_EVERY_S = 1.0
# Answers to a claim that no retry fixes: the token or the configuration is wrong.
FATAL_CODES = frozenset(
    {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.INVALID_ARGUMENT}
)


class FatalError(Exception):
    """The worker cannot work as configured (bad token, missing scope, bad agent id)."""


def _duration(seconds: float) -> duration_pb2.Duration:
    duration = duration_pb2.Duration()
    duration.FromNanoseconds(int(seconds * 1e9))
    return duration


class Worker:
    def __init__(self, settings: Settings, options: Options) -> None:
        if not settings.service_token:
            raise ConfigError(
                "the worker needs a service token in NEXUS_TOKEN (nexus token mint --subject worker "
                "--scope runtime.worker --scope ontology.read)"
            )
        self.settings = settings
        self.options = options.validate()
        self.heartbeat_path: Path = options.heartbeat_file or health.default_path(settings.data_dir)
        self._stop = asyncio.Event()
        self._slot = asyncio.Event()
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        self._answered = 0.0
        self._last_beat = 0.0
        self._complained = 0.0
        self._chunk = 0
        # Liveness: the heartbeat may be this old; renewals come every lease/3, claims every poll.
        self._max_age_s = max(30.0, 3 * options.poll_s, options.lease_s)

    # -- control ------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop claiming; in-flight tasks end their current step (SIGTERM/SIGINT)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    async def run(self) -> int:
        """Serves until stop(); the exit status (0, or 2 for a configuration no retry fixes)."""
        metadata = bearer_metadata(self.settings.service_token or "")
        runtime = open_channel(self.settings, self.settings.address("runtime"))
        ontology = open_channel(self.settings, self.settings.address("ontology"))
        self._stubs = Stubs(
            runtime=runtime_pb2_grpc.RuntimeServiceStub(runtime),
            workspace=workspace_pb2_grpc.WorkspaceServiceStub(runtime),
            artifacts=artifact_pb2_grpc.ArtifactServiceStub(runtime),
            ontology=ontology_pb2_grpc.OntologyServiceStub(ontology),
            metadata=metadata,
        )
        log.info(
            "worker started",
            extra={"fields": {"agents": list(self.options.agents), "concurrency": self.options.concurrency}},
        )
        try:
            await self._serve()
            return 0
        except FatalError as err:
            log.error("worker cannot work", extra={"fields": {"why": str(err)}})
            return 2
        finally:
            self._stop.set()  # runs in flight end their current step (also after a fatal error)
            await self._drain()
            health.remove(self.heartbeat_path)
            await runtime.close()
            await ontology.close()
            log.info("worker stopped")

    # -- the loop ---------------------------------------------------------------------------------

    async def _serve(self) -> None:
        # Only the agents it implements (options.validate resolved them): never another worker's.
        agents = list(self.options.agents)
        while not self.stopping:
            free = self.options.concurrency - len(self._in_flight)
            claimed = 0
            if free > 0:
                try:
                    claimed = await self._claim(agents, free)
                except Transient as err:
                    self._complain("cannot claim tasks", err)
            self._beat()
            if claimed and claimed == free:
                continue  # there may be more queued: ask again at once
            self._slot.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake(), timeout=self.options.poll_s)

    async def _wake(self) -> None:
        """Returns when the worker stops or a task ends (a slot freed)."""
        stop = asyncio.ensure_future(self._stop.wait())
        slot = asyncio.ensure_future(self._slot.wait())
        try:
            await asyncio.wait({stop, slot}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            slot.cancel()

    async def _claim(self, agents: list[str], free: int) -> int:
        """Claims up to `free` tasks and starts driving them; how many it got. More than 100
        agents are claimed for 100 at a time, a different hundred each round."""
        chunks = [agents[i : i + MAX_CLAIM_AGENTS] for i in range(0, len(agents), MAX_CLAIM_AGENTS)]
        self._chunk = (self._chunk + 1) % len(chunks)
        request = runtime_pb2.ClaimTasksRequest(
            agent_ids=chunks[self._chunk], max_tasks=free, lease_duration=_duration(self.options.lease_s)
        )
        try:
            reply = await self._stubs.runtime.ClaimTasks(request, metadata=self._stubs.metadata, timeout=CALL_TIMEOUT_S)
        except grpc.aio.AioRpcError as err:
            self._raise_for(err, "ClaimTasks")
        self._answered = time.time()
        for claimed in reply.claimed:
            # Keyed by lease: should this worker claim a task again after losing its lease on
            # it, the old run's clean-up must not remove the new one.
            lease_id = claimed.lease.lease_id
            self._in_flight[lease_id] = asyncio.create_task(self._drive(claimed), name=f"task {claimed.task.task_id}")
        return len(reply.claimed)

    def _raise_for(self, err: grpc.aio.AioRpcError, what: str) -> NoReturn:
        if err.code() in FATAL_CODES:
            info, _ = details_of(err)
            reason = f" ({info.reason})" if info is not None else ""
            raise FatalError(f"{what}: {err.code().name}{reason}: {err.details()}")
        raise Transient(f"{what}: {err.code().name}: {err.details()}")

    def _complain(self, what: str, err: Exception) -> None:
        if time.monotonic() - self._complained >= COMPLAINT_EVERY_S:
            self._complained = time.monotonic()
            log.warning(what, extra={"fields": {"why": str(err)}})

    def _beat(self) -> None:
        now = time.time()
        if now - self._last_beat < HEARTBEAT_EVERY_S or not self._answered:
            return
        self._last_beat = now
        try:
            health.write(
                self.heartbeat_path,
                health.Beat(os.getpid(), now, self._answered, self._max_age_s, len(self._in_flight)),
            )
        except OSError as err:
            self._complain("cannot write the heartbeat", err)

    # -- one task -------------------------------------------------------------------------------

    async def _drive(self, claimed: runtime_pb2.ClaimedTask) -> None:
        """Runs the task while a companion renews its lease. A renewal that finds the lease gone
        cancels the run at once: not one more call is made for the task."""
        task_id = claimed.task.task_id
        lost = asyncio.Event()
        runner = Runner(LeasedTask(self._stubs, claimed), self.options.step_delay_s, lambda: self.stopping)
        work = asyncio.create_task(runner.run())
        renewing = asyncio.create_task(self._keep_lease(claimed, work, lost))
        outcome: str
        try:
            outcome = await work
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if not lost.is_set() or (current is not None and current.cancelling()):
                raise
            outcome = Outcome.LOST
        except Exception:
            # A bug, not a task's failure: the task is left to its lease, the worker goes on.
            log.exception("the run of a task crashed", extra={"fields": {"task_id": task_id}})
            outcome = "crashed"
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing
            self._in_flight.pop(claimed.lease.lease_id, None)
            self._slot.set()
        if outcome in (Outcome.RELEASED, "crashed"):
            await self._release(claimed)
        log.info("task", extra={"fields": {"task_id": task_id, "outcome": str(outcome)}})

    async def _keep_lease(
        self, claimed: runtime_pb2.ClaimedTask, work: asyncio.Task[Outcome], lost: asyncio.Event
    ) -> None:
        lease_s = self.options.lease_s
        interval = lease_s / 3
        deadline = time.monotonic() + lease_s
        request = runtime_pb2.RenewLeaseRequest(
            task_id=claimed.task.task_id, lease_id=claimed.lease.lease_id, lease_duration=_duration(lease_s)
        )
        while True:
            await asyncio.sleep(interval)
            try:
                await self._stubs.runtime.RenewLease(request, metadata=self._stubs.metadata, timeout=interval)
            except grpc.aio.AioRpcError as err:
                problem = classify("RenewLease", err)
                if isinstance(problem, Transient) and time.monotonic() < deadline:
                    continue  # the lease may still be ours; try again
                log.info("lease gone", extra={"fields": {"task_id": claimed.task.task_id, "why": str(problem)}})
                lost.set()
                work.cancel()
                return
            deadline = time.monotonic() + lease_s
            self._answered = time.time()

    async def _release(self, claimed: runtime_pb2.ClaimedTask) -> None:
        """Lets go of a task it will not finish: the shortest lease, so it is queued again at
        once rather than when the full lease runs out."""
        request = runtime_pb2.RenewLeaseRequest(
            task_id=claimed.task.task_id, lease_id=claimed.lease.lease_id, lease_duration=_duration(MIN_LEASE_S)
        )
        with contextlib.suppress(grpc.aio.AioRpcError):
            await self._stubs.runtime.RenewLease(request, metadata=self._stubs.metadata, timeout=2.0)

    async def _drain(self) -> None:
        """Gives in-flight tasks the grace period to end their current step, then cuts them off
        (their leases expire and the tasks are queued again)."""
        running = list(self._in_flight.values())
        if not running:
            return
        _, pending = await asyncio.wait(running, timeout=self.options.grace_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
