"""`nexus worker` and `nexus worker --check`."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from nexus.kit.config import Settings
from worker import health
from worker.loop import Worker
from worker.options import Options


async def serve(settings: Settings, options: Options) -> int:
    """Runs the worker until SIGTERM or SIGINT, then stops gracefully."""
    worker = Worker(settings, options)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, worker.stop)
    try:
        return await worker.run()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def check(settings: Settings, options: Options, *, max_age_s: float | None = None) -> tuple[bool, str]:
    """The liveness probe: is the worker's heartbeat fresh?"""
    path: Path = options.heartbeat_file or health.default_path(settings.data_dir)
    return health.check(path, max_age_s=max_age_s)
