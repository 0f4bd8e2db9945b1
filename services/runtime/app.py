"""The Runtime service (`nexus.runtime.v1`, schema `runtime`): tasks, leases and event streams,
and each task's workspace: sessions, plan, context, memory, artifacts and cron schedules.

Background machinery, started with the server and stopped with it: the group committer's lanes,
the LISTEN connection that wakes streams for commits made by other replicas, the lease reaper and
the scheduler.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging

import grpc

from nexus.kit.postgres import service_url
from nexus.kit.server import Resources, ServiceDefinition
from nexus.runtime.v1 import (
    artifact_pb2,
    artifact_pb2_grpc,
    runtime_pb2,
    runtime_pb2_grpc,
    schedule_pb2,
    schedule_pb2_grpc,
    session_pb2,
    session_pb2_grpc,
    workspace_pb2,
    workspace_pb2_grpc,
)
from services.runtime.blobs import open_store
from services.runtime.hub import Hub
from services.runtime.references import References
from services.runtime.scheduler import Scheduler
from services.runtime.servicer import RuntimeServicer
from services.runtime.store.artifacts import ArtifactStore
from services.runtime.store.events import EventLog
from services.runtime.store.notify import Listener
from services.runtime.store.schedules import ScheduleStore
from services.runtime.store.sessions import SessionStore
from services.runtime.store.tasks import TaskStore
from services.runtime.store.workspace import WorkspaceStore
from services.runtime.workspace_servicer import (
    ArtifactServicer,
    ScheduleServicer,
    SessionServicer,
    WorkspaceServicer,
)

log = logging.getLogger("nexus.runtime")

DOMAIN = "nexus.runtime.v1"
SERVICE_NAME = runtime_pb2.DESCRIPTOR.services_by_name["RuntimeService"].full_name
SERVICE_NAMES = [
    SERVICE_NAME,
    session_pb2.DESCRIPTOR.services_by_name["SessionService"].full_name,
    workspace_pb2.DESCRIPTOR.services_by_name["WorkspaceService"].full_name,
    artifact_pb2.DESCRIPTOR.services_by_name["ArtifactService"].full_name,
    schedule_pb2.DESCRIPTOR.services_by_name["ScheduleService"].full_name,
]
REAP_INTERVAL_S = 0.5


class _Reaper:
    """Puts tasks whose lease expired back to queued, on every replica (SKIP LOCKED)."""

    def __init__(self, tasks: TaskStore, interval_s: float) -> None:
        self._tasks = tasks
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="runtime-lease-reaper")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                while await self._tasks.expire_leases() > 0:
                    pass
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("lease reaper failed", extra={"fields": {"error": type(exc).__name__}})


async def build(resources: Resources) -> ServiceDefinition:
    url = service_url(resources.settings, "runtime", driver="postgresql")
    log_ = EventLog(url)
    hub = Hub(log_)
    log_.attach(hub)
    db = resources.database("runtime")
    tasks = TaskStore(db, hub.publish)
    sessions = SessionStore(db)
    schedules = ScheduleStore(db, tasks)
    references = References(resources, sessions)
    listener = Listener(url, on_hint=hub.hint, on_reconnect=hub.rescan)
    reaper = _Reaper(tasks, REAP_INTERVAL_S)
    scheduler = Scheduler(schedules, resources.settings.scheduler_poll_s)
    workspace = WorkspaceStore(db, tasks)
    servicer = RuntimeServicer(tasks, log_, hub, references, workspace)
    artifacts = ArtifactStore(db, open_store(resources.settings))

    def register(server: grpc.aio.Server) -> None:
        runtime_pb2_grpc.add_RuntimeServiceServicer_to_server(servicer, server)
        session_pb2_grpc.add_SessionServiceServicer_to_server(SessionServicer(sessions), server)
        workspace_pb2_grpc.add_WorkspaceServiceServicer_to_server(WorkspaceServicer(workspace), server)
        artifact_pb2_grpc.add_ArtifactServiceServicer_to_server(
            ArtifactServicer(artifacts, resources.settings.artifact_max_bytes), server
        )
        schedule_pb2_grpc.add_ScheduleServiceServicer_to_server(ScheduleServicer(schedules, references), server)

    async def stop_hub() -> None:
        hub.close()

    async def freeze_heap() -> None:
        # Everything allocated so far lives as long as the process: keep the collector from
        # rescanning it on every full collection of the append path's short-lived objects.
        gc.freeze()

    return ServiceDefinition(
        name="runtime",
        domain=DOMAIN,
        register=register,
        service_names=SERVICE_NAMES,
        on_start=[log_.start, listener.start, reaper.start, scheduler.start, freeze_heap],
        on_stop=[scheduler.stop, reaper.stop, listener.stop, stop_hub, log_.stop],
    )
