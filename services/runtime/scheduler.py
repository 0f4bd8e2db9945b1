"""The scheduler: a loop on every runtime replica that fires due schedules (store/schedules.py
makes each due time fire exactly once, whichever replica gets there first)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from services.runtime.store.schedules import ScheduleStore

log = logging.getLogger("nexus.runtime.scheduler")

BATCH = 50


class Scheduler:
    def __init__(self, schedules: ScheduleStore, poll_s: float) -> None:
        self._schedules = schedules
        self._poll_s = poll_s
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="runtime-scheduler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._poll_s)
            try:
                while await self._schedules.fire_due(BATCH) == BATCH:
                    pass
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("scheduler round failed", extra={"fields": {"error": type(exc).__name__}})
