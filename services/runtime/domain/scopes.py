"""The service-token scope the Runtime service honours. Its spec declares it, so `nexus token mint`
offers it; `access` checks it."""

from __future__ import annotations

from nexus.kit.spec import Scope

WORKER_SCOPE = "runtime.worker"

SCOPES = (
    Scope(WORKER_SCOPE, "claim queued tasks and drive them as the lease holder (events, plan, context, artifacts)"),
)
