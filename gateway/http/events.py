"""`GET /v1/tasks/{task_id}/events`: a task's events as Server-Sent Events, through the servicer's
own GetTask and StreamTask.

Each event is `id: <seq>` and `data: <the TaskEvent as proto3 JSON>`, so a browser's EventSource
that reconnects sends `Last-Event-ID: <seq>` and the stream resumes right after it: nothing is
missed, nothing is seen twice (the runtime's guarantee, carried over). `Last-Event-ID` wins over
the `after_seq` query parameter, because an EventSource reconnects to the URL it first opened.

- Auth: the bearer header, or `?ticket=` from CreateStreamTicket (an EventSource sends no
  headers); the ticket's token goes through the same verification as a header.
- Before the first byte, every error answers as the RPCs do (Connect's error JSON, HTTP status):
  a bad id or seq, no or a bad token or ticket, another user's task (404, like a missing one).
- After it, the stream ends with one last event: `end` when the task has ended and its last
  event was sent (the client closes its EventSource), or `abort` with the error JSON (on
  `unavailable`, say the gateway draining for shutdown, the client just lets EventSource
  reconnect and resume).
- A comment line every HEARTBEAT_S keeps proxies from closing an idle stream. A client that goes
  away cancels the downstream stream at once.
"""

from __future__ import annotations

import asyncio
from typing import Any

from google.protobuf import json_format

from gateway.http.web import Request, json_bytes
from gateway.servicer import GatewayServicer
from gateway.tickets import TicketSealer
from nexus.gateway.v1 import gateway_pb2 as pb
from nexus.kit import connect
from nexus.kit.errors import invalid
from nexus.kit.http import Authenticator, StreamDrain

HEARTBEAT_S = 15.0
RETRY_MS = 1000
MAX_SEQ = 2**63 - 1
_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache, no-transform"),
    (b"x-accel-buffering", b"no"),
]


class NoDeadline:
    """A servicer context for a stream that lasts until the task ends or the client leaves."""

    def time_remaining(self) -> float | None:
        return None


def _seq(field: str, raw: str | None) -> int | None:
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or int(raw) > MAX_SEQ:
        raise invalid(field, "must be a whole number of at least 0 (the last seq seen)")
    return int(raw)


def after_seq(request: Request) -> int:
    """Where to resume: Last-Event-ID (an EventSource's reconnect), else `after_seq`, else 0."""
    resumed = _seq("Last-Event-ID", request.header("last-event-id"))
    if resumed is not None:
        return resumed
    return _seq("after_seq", request.query().get("after_seq")) or 0


def frame(event: Any) -> bytes:
    data = json_format.MessageToJson(event, indent=None, ensure_ascii=False)
    return f"id: {event.seq}\ndata: {data}\n\n".encode()


class TaskEvents:
    def __init__(
        self,
        servicer: GatewayServicer,
        authenticator: Authenticator,
        tickets: TicketSealer,
        drain: StreamDrain,
        domain: str,
    ) -> None:
        self._servicer = servicer
        self._authenticator = authenticator
        self._tickets = tickets
        self._drain = drain
        self._domain = domain

    async def _authenticate(self, request: Request, task_id: str) -> None:
        header = request.header("authorization")
        ticket = request.query().get("ticket")
        if header is None and ticket is not None:
            opened = self._tickets.open(ticket, task_id=task_id)
            header = f"Bearer {opened.token}"
        await connect.authenticate(
            self._authenticator, {"authorization": header} if header is not None else {}, public=False
        )

    async def __call__(self, request: Request, task_id: str) -> None:
        context = NoDeadline()
        try:
            await self._authenticate(request, task_id)
            wanted = pb.StreamTaskRequest(task_id=task_id, after_seq=after_seq(request))
            # Access first (NOT_FOUND for anyone else's task), so errors answer before the stream.
            await self._servicer.GetTask(pb.GetTaskRequest(task_id=wanted.task_id), context)
        except Exception as exc:
            await request.fail(exc, self._domain)
            return
        await request.start(200, _HEADERS)
        await request.body(f"retry: {RETRY_MS}\n: streaming\n\n".encode(), more=True)
        await self._stream(request, wanted, context)

    async def _stream(self, request: Request, wanted: pb.StreamTaskRequest, context: NoDeadline) -> None:
        # The downstream stream feeds a queue, so waiting for the next event can also notice a
        # client that left and the time for a heartbeat.
        events: asyncio.Queue[Any] = asyncio.Queue(maxsize=64)
        done = object()

        async def pump() -> None:
            try:
                async for event in self._servicer.StreamTask(wanted, context):
                    await events.put(event)
            except Exception as exc:
                await events.put(exc)
                return
            await events.put(done)

        async def disconnected() -> None:
            while (await request.receive())["type"] != "http.disconnect":
                pass

        last = wanted.after_seq
        try:
            with self._drain.tracked():
                pumping = asyncio.create_task(pump())
                leaving = asyncio.create_task(disconnected())
                try:
                    while True:
                        getting = asyncio.create_task(events.get())
                        finished, _ = await asyncio.wait(
                            {getting, leaving}, timeout=HEARTBEAT_S, return_when=asyncio.FIRST_COMPLETED
                        )
                        if leaving in finished or not finished:
                            getting.cancel()
                            if leaving in finished:
                                return  # the client left; the finally cancels the downstream stream
                            await request.body(b": keep-alive\n\n", more=True)
                            continue
                        item = getting.result()
                        if isinstance(item, Exception):
                            raise item
                        if item is done:
                            end = {"taskId": wanted.task_id, "lastSeq": str(last)}
                            await request.body(b"event: end\ndata: " + json_bytes(end) + b"\n\n")
                            return
                        last = item.seq
                        await request.body(frame(item), more=True)
                finally:
                    for task in (pumping, leaving):
                        task.cancel()
                    await asyncio.gather(pumping, leaving, return_exceptions=True)
        except Exception as exc:
            error = connect.connect_error(exc, self._domain)
            await request.body(b"event: abort\ndata: " + json_bytes(connect.error_json(error)) + b"\n\n")
