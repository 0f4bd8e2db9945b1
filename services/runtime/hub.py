"""The per-process fan-out hub: one feed per watched task, shared by all its subscribers.

A feed keeps the task's recent events in a contiguous buffer. It advances in two ways:
- events committed by this process are offered directly (no read at all);
- hints (LISTEN notifications from any replica, or a gap in offered events) wake the feed's one
  reader, which reads the table once for everyone.
So N subscribers of a task cost one read per new event, not N. A subscriber that falls behind the
buffer reads the table itself until it catches up. A slow poll re-reads the table now and then,
because notifications are only hints: the table is the truth.

A stream subscribes first, then reads the task's tail and replays, then waits (as Temporal's
long poll does), so no commit can slip between its replay and its wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Sequence
from typing import Protocol

from services.runtime.domain.events import Event
from services.runtime.domain.states import TERMINAL, ends_stream
from services.runtime.domain.tasks import Actor, require_visible

log = logging.getLogger("nexus.runtime.hub")

BUFFER_EVENTS = 2048
READ_PAGE = 500
POLL_S = 5.0


class Reader(Protocol):
    async def read(self, task_id: str, after_seq: int, limit: int, before_seq: int = 0) -> list[Event]: ...

    async def tail(self, task_id: str) -> tuple[str, str, int] | None: ...


class Feed:
    def __init__(self, task_id: str, reader: Reader) -> None:
        self.task_id = task_id
        self.subscribers = 0
        # Every event up to read_seq has been seen by the feed; the buffer ends there.
        self.read_seq: int | None = None
        self.hint_seq = 0
        self.buffer: list[Event] = []
        self._reader = reader
        self._changed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._hinted = asyncio.Event()
        # Commits of this task this process has in flight; their events arrive as offers.
        self._local_commits = 0
        self._no_local_commit = asyncio.Event()
        self._no_local_commit.set()
        self._task = asyncio.create_task(self._run(), name=f"runtime-feed-{task_id}")
        self.reads = 0

    def close(self) -> None:
        self._task.cancel()

    # -- what advances the feed ---------------------------------------------------------------

    def seed(self, seq: int) -> None:
        """The first subscriber's view of the tail: the feed starts there."""
        if self.read_seq is None:
            self.read_seq = seq
            if self.hint_seq > seq:
                self._hinted.set()

    def hint(self, seq: int) -> None:
        if seq > self.hint_seq:
            self.hint_seq = seq
        if self.read_seq is not None and seq > self.read_seq:
            self._hinted.set()

    def committing(self) -> None:
        self._local_commits += 1
        self._no_local_commit.clear()

    def settled(self) -> None:
        self._local_commits -= 1
        if self._local_commits == 0:
            self._no_local_commit.set()

    def offer(self, events: list[Event]) -> None:
        """Events this process committed, in seq order; taken as they are when contiguous."""
        if self.read_seq is not None and events[0].seq <= self.read_seq + 1 < events[-1].seq + 1:
            fresh = [e for e in events if e.seq > self.read_seq]
            self._extend(fresh)
        else:
            self.hint(events[-1].seq)

    def _extend(self, events: list[Event]) -> None:
        if not events:
            return
        self.buffer.extend(events)
        if len(self.buffer) > BUFFER_EVENTS:
            del self.buffer[: len(self.buffer) - BUFFER_EVENTS // 2]
        self.read_seq = events[-1].seq
        changed, self._changed = self._changed, asyncio.get_running_loop().create_future()
        changed.set_result(None)

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._hinted.wait(), POLL_S)
            hinted = self._hinted.is_set()
            self._hinted.clear()
            if hinted:
                # The hint may be our own commit's notification, ahead of its offer: once the
                # commits in flight have offered their events, read only what is still missing.
                await self._no_local_commit.wait()
                if self.read_seq is not None and self.hint_seq <= self.read_seq:
                    continue
            if self.read_seq is None:
                continue
            try:
                after = self.read_seq
                events = await self._reader.read(self.task_id, after, READ_PAGE)
                self.reads += 1
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "feed read failed", extra={"fields": {"task_id": self.task_id, "error": type(exc).__name__}}
                )
                await asyncio.sleep(0.5)
                self._hinted.set()
                continue
            # An offer may have advanced the feed while the read was in flight.
            self._extend([e for e in events if e.seq > (self.read_seq or 0)])
            if len(events) == READ_PAGE:
                self._hinted.set()

    # -- what subscribers see -----------------------------------------------------------------

    def since(self, after: int) -> list[Event] | None:
        """Buffered events after `after`; [] when there are none yet; None when the buffer no
        longer reaches back to `after` (the subscriber must read the table)."""
        if self.read_seq is None or after >= self.read_seq:
            return []
        if not self.buffer or self.buffer[0].seq > after + 1:
            return None
        return self.buffer[after + 1 - self.buffer[0].seq :]

    async def changed(self) -> None:
        await asyncio.shield(self._changed)


class Hub:
    def __init__(self, reader: Reader) -> None:
        self._reader = reader
        self._feeds: dict[str, Feed] = {}

    # -- the committer's and the listener's side ----------------------------------------------

    def watching(self, task_id: str) -> bool:
        return task_id in self._feeds

    def publish(self, task_id: str, events: list[Event]) -> None:
        feed = self._feeds.get(task_id)
        if feed is not None and events:
            feed.offer(events)

    def hint(self, task_id: str, seq: int) -> None:
        feed = self._feeds.get(task_id)
        if feed is not None:
            feed.hint(seq)

    def committing(self, task_ids: list[str]) -> list[Feed]:
        """The feeds told that a local commit of their task is in flight; `settled` takes exactly
        these back (a feed created meanwhile was never told)."""
        feeds = [feed for feed in map(self._feeds.get, task_ids) if feed is not None]
        for feed in feeds:
            feed.committing()
        return feeds

    def settled(self, marked: Sequence[object]) -> None:
        for feed in marked:
            assert isinstance(feed, Feed)
            feed.settled()

    def rescan(self) -> None:
        """After a (re)connect of the listener: notifications may have been missed."""
        for feed in self._feeds.values():
            feed.hint((feed.read_seq or 0) + 1)

    def close(self) -> None:
        for feed in self._feeds.values():
            feed.close()
        self._feeds.clear()

    def feed(self, task_id: str) -> Feed | None:
        return self._feeds.get(task_id)

    # -- streams ------------------------------------------------------------------------------

    async def follow(self, actor: Actor, task_id: str, after_seq: int) -> AsyncGenerator[Event, None]:
        """Every event with seq > after_seq, once each and in order, live; ends after the
        task's terminal status event."""
        feed = self._feeds.get(task_id)
        if feed is None:
            feed = self._feeds[task_id] = Feed(task_id, self._reader)
        feed.subscribers += 1
        try:
            tail = await self._reader.tail(task_id)
            require_visible(actor, tail[0] if tail else None)
            assert tail is not None
            _, status, last_seq = tail
            feed.seed(last_seq)
            if status in TERMINAL and after_seq >= last_seq:
                return
            last = after_seq
            while True:
                events = feed.since(last)
                if events is None:
                    events = await self._reader.read(task_id, last, READ_PAGE)
                if not events:
                    await feed.changed()
                    continue
                for event in events:
                    yield event
                    last = event.seq
                    if ends_stream(event.type, event.metadata):
                        return
        finally:
            feed.subscribers -= 1
            if feed.subscribers == 0 and self._feeds.get(task_id) is feed:
                del self._feeds[task_id]
                feed.close()
