"""Background rounds a service runs on every replica: the runtime's lease reaper and scheduler,
the request logs' pruning. A round must be safe on every replica at once (its store method takes
rows with `FOR UPDATE SKIP LOCKED`, so each row is handled once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("nexus.periodic")


class Periodic:
    """Runs `round` every `interval_s` until stopped. A round returns whether it filled a whole
    batch; then the next round starts at once. A failed round is logged and the loop goes on."""

    def __init__(self, name: str, interval_s: float, round_: Callable[[], Awaitable[bool]]) -> None:
        self._name = name
        self._interval_s = interval_s
        self._round = round_
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"periodic-{self._name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                while await self._round():
                    pass
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(f"{self._name} round failed", extra={"fields": {"error": type(exc).__name__}})
