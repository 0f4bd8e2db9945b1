"""LISTEN on the runtime's channel: other replicas' commits arrive as wake-up hints.

A notification only says "task T has events up to seq S" (`writer.parse_hints`); the reader then
reads the table, which is the truth. If the connection drops, notifications may have been
missed, so on every (re)connect every watched task is re-read.

A connection can also go quiet without dropping: its backend stops (or the path to it does)
while the TCP connection looks open, and libpq's default keepalive would notice after about two
hours. So the listener checks itself: every `check_s` it sends, from a second connection, a
notification on a channel of its own and expects it back within `check_s`; TCP keepalives on
the connection catch a peer that is gone altogether. A check that fails ends the connection like
a drop: reconnect, listen again, re-read every watched task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable
from typing import Any

import psycopg

from services.runtime.store import pg, writer
from services.runtime.store.tables import NOTIFY_CHANNEL

log = logging.getLogger("nexus.runtime.notify")

# The default of NEXUS_LISTEN_CHECK_S: a silent connection is replaced within about two of these.
CHECK_S = 2.0
_NAME = "nexus-runtime-listen"


class Silent(Exception):
    """The listen connection did not deliver its own check notification in time."""


class Listener:
    def __init__(
        self,
        url: str,
        on_hint: Callable[[str, int], None],
        on_reconnect: Callable[[], None],
        *,
        check_s: float = CHECK_S,
    ) -> None:
        """`on_reconnect` also answers a payload of NOTIFY_EVERYTHING (a group too large to name)."""
        self._url = url
        self._on_hint = on_hint
        self._on_reconnect = on_reconnect
        self._check_s = check_s
        # This listener's own channel: its checks reach no other replica.
        self._check_channel = f"{NOTIFY_CHANNEL}_check_{secrets.token_hex(8)}"
        self._checks = 0
        self._echo: asyncio.Future[None] | None = None
        self._sender: pg.Conn | None = None
        self._task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()
        self.reconnects = 0

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
        await self._close_sender()

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            try:
                conn = await pg.connect(self._url, name=_NAME, keepalive_s=self._check_s)
                try:
                    await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    await conn.execute(f"LISTEN {self._check_channel}")
                    self.ready.set()
                    self._on_reconnect()
                    backoff = 0.1
                    await self._drain(conn)
                finally:
                    with contextlib.suppress(Exception):
                        await conn.close()
            except asyncio.CancelledError:
                raise
            except (psycopg.Error, OSError, Silent) as exc:
                self.ready.clear()
                self.reconnects += 1
                log.warning("listen connection lost; reconnecting", extra={"fields": {"error": type(exc).__name__}})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _drain(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Reads notifications straight from libpq with one persistent reader on the socket:
        every append transaction sends one, so this runs often (psycopg's `notifies()` pays a
        future and a timer per wake-up). Returns only by raising: when the connection fails, or
        when it fails a check."""
        pgconn = conn.pgconn
        loop = asyncio.get_running_loop()
        failed: asyncio.Future[BaseException] = loop.create_future()

        def readable() -> None:
            try:
                pgconn.consume_input()
                while (note := pgconn.notifies()) is not None:
                    self._dispatch(note.relname.decode(), note.extra.decode())
            except Exception as exc:
                if not failed.done():
                    failed.set_result(exc)

        fd = pgconn.socket
        loop.add_reader(fd, readable)
        checking = asyncio.create_task(self._check_until_silent(failed), name="runtime-listen-check")
        try:
            readable()  # anything that arrived with the LISTEN reply
            raise await failed
        finally:
            loop.remove_reader(fd)
            checking.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await checking

    async def _check_until_silent(self, failed: asyncio.Future[BaseException]) -> None:
        while True:
            await asyncio.sleep(self._check_s)
            try:
                await asyncio.wait_for(self._check(), self._check_s)
            except (TimeoutError, psycopg.Error, OSError) as exc:
                await self._close_sender()
                if not failed.done():
                    failed.set_result(Silent(f"no check notification within {self._check_s} s ({type(exc).__name__})"))
                return

    async def _check(self) -> None:
        """One notification to ourselves, sent on another connection, and back."""
        self._checks += 1
        echo = self._echo = asyncio.get_running_loop().create_future()
        if self._sender is None or self._sender.closed:
            self._sender = await pg.connect(self._url, name=f"{_NAME}-check")
        await self._sender.execute("SELECT pg_notify(%s, %s)", (self._check_channel, str(self._checks)))
        await echo

    async def _close_sender(self) -> None:
        sender, self._sender = self._sender, None
        if sender is not None:
            with contextlib.suppress(Exception):
                await sender.close()

    def _dispatch(self, channel: str, payload: str) -> None:
        if channel == self._check_channel:
            if payload == str(self._checks) and self._echo is not None and not self._echo.done():
                self._echo.set_result(None)
            return
        hints = writer.parse_hints(payload)
        if hints is None:
            self._on_reconnect()
            return
        for task_id, seq in hints:
            self._on_hint(task_id, seq)
