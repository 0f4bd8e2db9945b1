"""The feed behind WatchRevocations: one reader per process, fanned out to every follower.

Each follower (one per server of every service) holds one stream. The feed reads the table once
per `NEXUS_REVOCATION_POLL_S` (at once when this process itself revoked), whatever the number of
followers, so revocations committed by another replica arrive within one poll. The table is the
truth; a follower first replays it from its cursor, then gets what the feed reads next.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from nexus.kit.errors import Unavailable
from services.user.domain.records import RevocationRecord
from services.user.store.revocations import RevocationStore

log = logging.getLogger("nexus.user.revocations")

# Rows per message: a replay of a busy TTL stays far below the message size limit.
BATCH = 1000
# Batches a follower may have waiting before it is told to resume instead (it is not reading).
BACKLOG = 256
PRUNE_EVERY_S = 60.0


class _Follower:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[list[RevocationRecord]] = asyncio.Queue(BACKLOG)
        self.lagging = False

    def push(self, batch: list[RevocationRecord]) -> None:
        try:
            self.queue.put_nowait(batch)
        except asyncio.QueueFull:
            self.lagging = True


class RevocationFeed:
    def __init__(self, store: RevocationStore, poll_s: float) -> None:
        self._store = store
        self._poll_s = poll_s
        self._followers: set[_Follower] = set()
        self._last_seq = 0
        self._wake = asyncio.Event()
        self._pruned_at = float("-inf")
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """This process revoked something: read now rather than at the next poll."""
        self._wake.set()

    async def start(self) -> None:
        try:
            await self._prune()
            self._last_seq = await self._store.last_seq()
        except Exception as exc:
            # Serve anyway: from seq 0 the first poll that works sends what followers may lack
            # (each drops what it already has).
            log.warning("revocations not read at start", extra={"fields": {"error": type(exc).__name__}})
        self._task = asyncio.create_task(self._run(), name="revocation-feed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_s)
            self._wake.clear()
            try:
                await self._read()
                if time.monotonic() - self._pruned_at >= PRUNE_EVERY_S:
                    await self._prune()
            except Exception as exc:
                # The database is away: followers keep what they have; the next poll retries.
                log.warning("reading revocations failed", extra={"fields": {"error": type(exc).__name__}})

    async def _read(self) -> None:
        while True:
            batch = await self._store.after(self._last_seq, BATCH)
            if not batch:
                return
            self._last_seq = batch[-1].seq
            for follower in self._followers:
                follower.push(batch)
            if len(batch) < BATCH:
                return

    async def _prune(self) -> None:
        self._pruned_at = time.monotonic()
        pruned = await self._store.prune()
        if pruned:
            log.info("revocations pruned", extra={"fields": {"count": pruned}})

    async def follow(self, after_seq: int) -> AsyncIterator[list[RevocationRecord]]:
        """Everything in force after `after_seq`, then each new batch. The first batch is sent
        even when empty, so a follower knows it is caught up."""
        follower = _Follower()
        # Subscribe first, then replay: a row committed in between arrives twice, never zero
        # times, and the cursor drops the copy.
        self._followers.add(follower)
        try:
            cursor, first = after_seq, True
            while True:
                replay = await self._store.after(cursor, BATCH)
                if replay or first:
                    yield replay
                cursor, first = (replay[-1].seq if replay else cursor), False
                if len(replay) < BATCH:
                    break
            while True:
                if follower.lagging:
                    # A batch was dropped: resuming from the cursor is the only way not to skip it.
                    raise Unavailable(
                        "too far behind on revocations; resume from the cursor", reason="FOLLOWER_LAGGING"
                    )
                batch = await follower.queue.get()
                fresh = [r for r in batch if r.seq > cursor]
                if fresh:
                    cursor = fresh[-1].seq
                    yield fresh
        finally:
            self._followers.discard(follower)
