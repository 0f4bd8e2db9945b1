"""LISTEN on the runtime's channel: other replicas' commits arrive as wake-up hints.

A notification only says "task T has events up to seq S" (`writer.parse_hints`); the reader then reads the table, which
is the truth. If the connection drops, notifications may have been missed, so on every
(re)connect every watched task is re-read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import psycopg

from services.runtime.store import pg, writer
from services.runtime.store.tables import NOTIFY_CHANNEL

log = logging.getLogger("nexus.runtime.notify")


class Listener:
    def __init__(self, url: str, on_hint: Callable[[str, int], None], on_reconnect: Callable[[], None]) -> None:
        """`on_reconnect` also answers a payload of NOTIFY_EVERYTHING (a group too large to name)."""
        self._url = url
        self._on_hint = on_hint
        self._on_reconnect = on_reconnect
        self._task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="runtime-listen")
        # Streams may start as soon as the server serves; wait (briefly) until we listen.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.ready.wait(), timeout=5)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            try:
                conn = await pg.connect(self._url, name="nexus-runtime-listen")
                try:
                    await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    self.ready.set()
                    self._on_reconnect()
                    backoff = 0.1
                    await self._drain(conn)
                finally:
                    with contextlib.suppress(Exception):
                        await conn.close()
            except asyncio.CancelledError:
                raise
            except (psycopg.Error, OSError) as exc:
                self.ready.clear()
                log.warning("listen connection lost; reconnecting", extra={"fields": {"error": type(exc).__name__}})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _drain(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Reads notifications straight from libpq with one persistent reader on the socket:
        every append transaction sends one, so this runs often (psycopg's `notifies()` pays a
        future and a timer per wake-up). Returns only by raising when the connection fails."""
        pgconn = conn.pgconn
        loop = asyncio.get_running_loop()
        failed: asyncio.Future[BaseException] = loop.create_future()

        def readable() -> None:
            try:
                pgconn.consume_input()
                while (note := pgconn.notifies()) is not None:
                    self._dispatch(note.extra.decode())
            except Exception as exc:
                if not failed.done():
                    failed.set_result(exc)

        fd = pgconn.socket
        loop.add_reader(fd, readable)
        try:
            readable()  # anything that arrived with the LISTEN reply
            raise await failed
        finally:
            loop.remove_reader(fd)

    def _dispatch(self, payload: str) -> None:
        hints = writer.parse_hints(payload)
        if hints is None:
            self._on_reconnect()
            return
        for task_id, seq in hints:
            self._on_hint(task_id, seq)
