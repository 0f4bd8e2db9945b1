"""The Runtime service (`nexus.runtime.v1`, schema `runtime`): tasks, leases and event streams,
and each task's workspace: sessions, plan, context, memory, artifacts and cron schedules.

Background machinery, started with the server and stopped with it: the group committer's lane,
the LISTEN connection that wakes streams for commits made by other replicas, the lease reaper,
the scheduler and the pruning of the request log.
"""

from __future__ import annotations

import gc
import logging

import grpc

from nexus.kit.idempotency import RequestLog
from nexus.kit.periodic import Periodic
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
from services.runtime.servicer import RuntimeServicer
from services.runtime.store.artifacts import ArtifactStore
from services.runtime.store.events import EventLog
from services.runtime.store.notify import Listener
from services.runtime.store.schedules import ScheduleStore
from services.runtime.store.sessions import SessionStore
from services.runtime.store.tables import request_log
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
REAP_BATCH = 100
FIRE_BATCH = 50


async def build(resources: Resources) -> ServiceDefinition:
    url = service_url(resources.settings, "runtime", driver="postgresql")
    log_ = EventLog(url)
    hub = Hub(log_)
    log_.attach(hub)
    db = resources.database("runtime")
    requests = RequestLog(db, request_log, ttl_s=resources.settings.request_id_ttl_s)
    tasks = TaskStore(db, hub.publish, requests)
    sessions = SessionStore(db, requests)
    schedules = ScheduleStore(db, tasks, requests)
    references = References(resources, sessions)
    listener = Listener(url, on_hint=hub.hint, on_reconnect=hub.rescan, check_s=resources.settings.listen_check_s)

    async def reap() -> bool:
        return await tasks.expire_leases(limit=REAP_BATCH) == REAP_BATCH

    async def fire() -> bool:
        return await schedules.fire_due(FIRE_BATCH) == FIRE_BATCH

    reaper = Periodic("lease-reaper", REAP_INTERVAL_S, reap)
    scheduler = Periodic("scheduler", resources.settings.scheduler_poll_s, fire)
    workspace = WorkspaceStore(db, tasks)
    max_message_bytes = resources.settings.max_message_bytes
    servicer = RuntimeServicer(tasks, log_, hub, references, workspace, max_message_bytes)
    artifacts = ArtifactStore(db, open_store(resources.settings), requests)
    pruning = requests.pruner()

    def register(server: grpc.aio.Server) -> None:
        runtime_pb2_grpc.add_RuntimeServiceServicer_to_server(servicer, server)
        session_pb2_grpc.add_SessionServiceServicer_to_server(SessionServicer(sessions, max_message_bytes), server)
        workspace_pb2_grpc.add_WorkspaceServiceServicer_to_server(
            WorkspaceServicer(workspace, max_message_bytes), server
        )
        artifact_pb2_grpc.add_ArtifactServiceServicer_to_server(
            ArtifactServicer(artifacts, resources.settings.artifact_max_bytes, max_message_bytes), server
        )
        schedule_pb2_grpc.add_ScheduleServiceServicer_to_server(
            ScheduleServicer(schedules, references, max_message_bytes), server
        )

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
        on_start=[log_.start, listener.start, reaper.start, scheduler.start, pruning.start, freeze_heap],
        on_stop=[pruning.stop, scheduler.stop, reaper.stop, listener.stop, stop_hub, log_.stop],
    )
