"""Password hashing off the event loop, with a cap on how many run at once (DESIGN §4).

Argon2id with m=19 MiB costs ~0.1 s of CPU and 19 MiB of memory per call. A dedicated thread
pool bounds both; the semaphore bounds how long a call may queue, so a flood of sign-ins gets
RESOURCE_EXHAUSTED instead of an ever-growing backlog.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from nexus.kit.errors import ResourceExhausted
from services.user.domain import passwords

T = TypeVar("T")


def default_concurrency() -> int:
    return max(1, min(4, os.cpu_count() or 1))


class PasswordHasher:
    def __init__(self, concurrency: int | None = None, *, queue_timeout_s: float = 10.0) -> None:
        self.concurrency = concurrency or default_concurrency()
        self._executor = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="argon2")
        self._slots = asyncio.Semaphore(self.concurrency)
        self._queue_timeout_s = queue_timeout_s
        self._dummy: str | None = None

    async def _run(self, fn: Callable[..., T], *args: str) -> T:
        try:
            await asyncio.wait_for(self._slots.acquire(), self._queue_timeout_s)
        except TimeoutError:
            raise ResourceExhausted(
                "too many password checks are running; retry shortly", reason="PASSWORD_HASHING_BUSY"
            ) from None
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        finally:
            self._slots.release()

    async def hash(self, password: str) -> str:
        return await self._run(passwords.hash_password, password)

    async def verify(self, password: str, phc: str) -> bool:
        return await self._run(passwords.verify_password, password, phc)

    async def verify_unknown(self, password: str) -> None:
        """Spends a full verification on an unknown email, so it answers as slowly as a wrong
        password (the dummy has the real parameters)."""
        if self._dummy is None:
            self._dummy = await self._run(passwords.dummy_hash)
        await self.verify(password, self._dummy)

    async def warm_up(self) -> None:
        if self._dummy is None:
            self._dummy = await self._run(passwords.dummy_hash)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
