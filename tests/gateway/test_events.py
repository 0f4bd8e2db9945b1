"""Task events as Server-Sent Events (`GET /v1/tasks/{id}/events`): `id:` is the seq, so a client
that resumes with Last-Event-ID (or after_seq) misses nothing and sees nothing twice; the stream
ends with `end` when the task ends; a ticket opens one task's stream for its owner only; bad
input answers 4xx in Connect's error JSON; tickets never reach a log."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from urllib.parse import quote

import pytest

from launch.registry import GATEWAY
from nexus.kit.config import Settings
from nexus.kit.logs import JsonFormatter
from nexus.kit.server import running
from tests.gateway.conftest import Account, Scan, Worker
from tests.gateway.http_support import ConnectError, Http, SseEvent, bearer, seqs


async def finished_task(http: Http, account: Account, scan: Scan, worker: Worker, messages: int = 3) -> tuple[str, int]:
    task = await http.ok("RunCommand", {"text": f"{scan.trigger} https://acme.com"}, token=account.tokens.access_token)
    claimed = await worker.claim(scan.agent_id)
    await worker.say(claimed, *[f"message {i}" for i in range(messages)])
    await worker.finish(claimed)
    got = await http.ok("GetTask", {"taskId": task["taskId"]}, token=account.tokens.access_token)
    return task["taskId"], int(got["lastSeq"])


def events_path(task_id: str, **query: object) -> str:
    tail = "&".join(f"{k}={quote(str(v), safe='')}" for k, v in query.items())
    return f"/v1/tasks/{task_id}/events" + (f"?{tail}" if tail else "")


async def test_resume_from_any_seq_delivers_each_event_once(
    http: Http, alice: Account, scan: Scan, worker: Worker
) -> None:
    task_id, last = await finished_task(http, alice, scan, worker)
    auth = bearer(alice.tokens.access_token)
    for after in range(last + 1):
        by_query = await http.events(events_path(task_id, after_seq=after), auth)
        by_header = await http.events(events_path(task_id), {**auth, "last-event-id": str(after)})
        for events in (by_query, by_header):
            assert seqs(events) == list(range(after + 1, last + 1)), after
            assert events[-1].event == "end"
            assert events[-1].json == {"taskId": task_id, "lastSeq": str(last)}
    # An EventSource reconnects to the URL it first opened: its Last-Event-ID wins over after_seq.
    resumed = await http.events(events_path(task_id, after_seq=0), {**auth, "last-event-id": "4"})
    assert seqs(resumed) == list(range(5, last + 1))


async def test_a_live_stream_follows_the_task_and_ends_when_it_ends(
    http: Http, alice: Account, scan: Scan, worker: Worker
) -> None:
    task = await http.ok("RunCommand", {"text": f"{scan.trigger} https://acme.com"}, token=alice.tokens.access_token)
    async with http.stream(events_path(task["taskId"]), bearer(alice.tokens.access_token)) as opened:
        assert opened.status == 200
        assert opened.headers["content-type"].startswith("text/event-stream")
        assert opened.headers["cache-control"].startswith("no-cache")
        seen: list[SseEvent] = []

        async def read(until: int) -> None:
            async for event in opened.events:
                seen.append(event)
                if len(seen) >= until or event.event == "end":
                    return

        await asyncio.wait_for(read(2), 10)  # created, the plan
        claimed = await worker.claim(scan.agent_id)
        await worker.say(claimed, "live one")
        await asyncio.wait_for(read(4), 10)  # claimed, the message: as they commit
        assert seen[3].json["contentText"] == "live one"
        await worker.finish(claimed)
        await asyncio.wait_for(read(100), 10)
    assert seqs(seen) == list(range(1, len(seen)))
    assert seen[-1].event == "end"


async def test_a_ticket_opens_its_own_task_for_its_owner_and_nothing_else(
    http: Http, alice: Account, bob: Account, scan: Scan, worker: Worker
) -> None:
    task_id, last = await finished_task(http, alice, scan, worker, messages=1)
    other = await http.ok("RunCommand", {"text": f"{scan.trigger} https://b.com"}, token=alice.tokens.access_token)
    ticket = await http.ok("CreateStreamTicket", {"taskId": task_id}, token=alice.tokens.access_token)
    assert ticket["eventsPath"] == f"/v1/tasks/{task_id}/events"
    assert ticket["expireTime"]
    # No header at all: the ticket alone opens the stream, as a browser's EventSource does.
    events = await http.events(events_path(task_id, ticket=ticket["ticket"]))
    assert seqs(events) == list(range(1, last + 1))

    async def refused(path: str, headers: dict[str, str] | None = None) -> ConnectError:
        async with http.stream(path, headers or {}) as opened:
            assert opened.status != 200, path
            return ConnectError(opened.status, json.loads(opened.body))

    elsewhere = await refused(events_path(other["taskId"], ticket=ticket["ticket"]))
    assert (elsewhere.status, elsewhere.code, elsewhere.reason) == (401, "unauthenticated", "TICKET_INVALID")
    tampered = ticket["ticket"][:-4] + ("AAAA" if not ticket["ticket"].endswith("AAAA") else "BBBB")
    assert (await refused(events_path(task_id, ticket=tampered))).reason == "TICKET_INVALID"
    assert (await refused(events_path(task_id, ticket="x" * 5000))).reason == "TICKET_INVALID"
    # A ticket is no bearer token: it opens nothing on the RPC routes.
    as_token = await http.error("GetTask", {"taskId": task_id}, token=ticket["ticket"])
    assert as_token.code == "unauthenticated"
    # Bob cannot mint one for alice's task, and his bearer token does not open it.
    denied = await http.error("CreateStreamTicket", {"taskId": task_id}, token=bob.tokens.access_token)
    assert (denied.status, denied.reason) == (404, "TASK_NOT_FOUND")
    theirs = await refused(events_path(task_id), bearer(bob.tokens.access_token))
    nobodys = await refused(events_path(str(uuid.uuid4())), bearer(bob.tokens.access_token))
    assert (theirs.status, theirs.reason) == (404, "TASK_NOT_FOUND")
    assert theirs.body == nobodys.body


@pytest.mark.parametrize(
    ("path", "headers", "field"),
    [
        ("/v1/tasks/not-a-uuid/events", {}, "task_id"),
        ("/v1/tasks/{task}/events?after_seq=-1", {}, "after_seq"),
        ("/v1/tasks/{task}/events?after_seq=soon", {}, "after_seq"),
        ("/v1/tasks/{task}/events?after_seq=99999999999999999999999", {}, "after_seq"),
        ("/v1/tasks/{task}/events", {"last-event-id": "seven"}, "Last-Event-ID"),
    ],
)
async def test_bad_input_answers_invalid_argument_before_the_stream(
    http: Http, alice: Account, path: str, headers: dict[str, str], field: str
) -> None:
    async with http.stream(path.format(task=uuid.uuid4()), {**bearer(alice.tokens.access_token), **headers}) as opened:
        error = ConnectError(opened.status, json.loads(opened.body))
    assert (error.status, error.code, error.fields) == (400, "invalid_argument", {field})
    assert "soon" not in str(error.body) and "seven" not in str(error.body)


async def test_no_credentials_is_unauthenticated(http: Http) -> None:
    async with http.stream(events_path(str(uuid.uuid4()))) as opened:
        assert opened.status == 401
        assert json.loads(opened.body)["code"] == "unauthenticated"


async def test_tickets_and_tokens_never_reach_a_log_line(
    http: Http, alice: Account, scan: Scan, worker: Worker, caplog: pytest.LogCaptureFixture
) -> None:
    task_id, _ = await finished_task(http, alice, scan, worker, messages=1)
    ticket = await http.ok("CreateStreamTicket", {"taskId": task_id}, token=alice.tokens.access_token)
    caplog.set_level(logging.DEBUG)
    await http.events(events_path(task_id, after_seq=0, ticket=ticket["ticket"]))
    async with http.stream(events_path(task_id, ticket=ticket["ticket"] + "x")) as opened:
        assert opened.status == 401
    lines = [r for r in caplog.records if r.name == "nexus.http"]
    assert [line.fields["status"] for line in lines] == [200, 401]  # type: ignore[attr-defined]
    assert {line.fields["route"] for line in lines} == {"GET /v1/tasks/{task_id}/events"}  # type: ignore[attr-defined]
    assert lines[0].fields["caller"] == alice.user_id  # type: ignore[attr-defined]
    # What the servers write (the test's own HTTP client logs its URLs at DEBUG; it is not ours).
    written = "\n".join(JsonFormatter().format(r) for r in caplog.records if not r.name.startswith("pyqwest"))
    assert "nexus.http" in written and "nexus.rpc" in written
    for secret in (ticket["ticket"], alice.tokens.access_token, "ticket="):
        assert secret not in written


async def test_shutdown_ends_open_streams_with_unavailable_and_the_client_resumes_exactly(
    http: Http, settings: Settings, alice: Account, scan: Scan, worker: Worker
) -> None:
    task = await http.ok("RunCommand", {"text": f"{scan.trigger} https://acme.com"}, token=alice.tokens.access_token)
    claimed = await worker.claim(scan.agent_id)
    await worker.say(claimed, "before")
    auth = bearer(alice.tokens.access_token)
    seen: list[SseEvent] = []
    async with running(GATEWAY, settings, port=0) as replica:
        assert replica.http is not None
        other = Http(f"http://{replica.http.address}", http.client)
        async with other.stream(events_path(task["taskId"]), auth) as opened:

            async def read(until: int) -> None:
                async for event in opened.events:
                    seen.append(event)
                    if len(seen) >= until or event.event in ("end", "abort"):
                        return

            await asyncio.wait_for(read(4), 10)
            stopping = asyncio.create_task(replica.stop(grace=5))
            await asyncio.wait_for(read(100), 10)
            await stopping
    assert seen[-1].event == "abort"
    assert seen[-1].json["code"] == "unavailable"
    await worker.say(claimed, "after")
    await worker.finish(claimed)
    rest = await http.events(events_path(task["taskId"]), {**auth, "last-event-id": str(seqs(seen)[-1])})
    assert seqs(seen) + seqs(rest) == list(range(1, len(seqs(seen)) + len(seqs(rest)) + 1))
    assert rest[-1].event == "end"


async def test_every_event_is_one_line_of_proto3_json(http: Http, alice: Account, scan: Scan, worker: Worker) -> None:
    task = await http.ok("RunCommand", {"text": f"{scan.trigger} https://acme.com"}, token=alice.tokens.access_token)
    claimed = await worker.claim(scan.agent_id)
    await worker.say(claimed, "two\nlines and ünïcode 中文")
    await worker.finish(claimed)
    events = await http.events(events_path(task["taskId"]), bearer(alice.tokens.access_token))
    message = next(e for e in events if e.event == "message" and e.json["type"] == "EVENT_TYPE_MESSAGE")
    assert message.json["contentText"] == "two\nlines and ünïcode 中文"
