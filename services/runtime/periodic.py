"""Background rounds every runtime replica runs: the lease reaper and the scheduler.

Both are safe to run on every replica at once: their store methods take rows with
`FOR UPDATE SKIP LOCKED`, so each expired lease is requeued, and each due time fired, once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("nexus.runtime.periodic")


class Periodic:
    """Runs `round` every `interval_s` until stopped. A round returns whether it filled a whole
    batch; then the next round starts at once. A failed round is logged and the loop goes on."""

    def __init__(self, name: str, interval_s: float, round_: Callable[[], Awaitable[bool]]) -> None:
        self._name = name
        self._interval_s = interval_s
        self._round = round_
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"runtime-{self._name}")

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
