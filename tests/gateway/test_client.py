"""The importable client against real servers: auth metadata, token refresh (reactive,
proactive, single-flight with rotating refresh tokens, re-sign-in), and streams that resume across
a restarting gateway or runtime with every event exactly once."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
from google.protobuf import timestamp_pb2

from nexus.client import NexusClient, NotSignedIn
from nexus.gateway.v1 import gateway_pb2 as pb
from nexus.kit.config import Settings
from nexus.runtime.v1 import task_pb2
from nexus.user.v1 import user_pb2
from tests.conftest import free_port
from tests.gateway.conftest import PASSWORD, Account, Platform, Scan, SignUp, Worker, extra_server
from tests.support import Tokens, eventually, rpc_error


@pytest.fixture
async def client(platform: Platform) -> AsyncIterator[NexusClient]:
    async with NexusClient(platform.gateway.address) as client:
        yield client


def expired_access(tokens: Tokens, account: Account, *, claims_fresh: bool) -> user_pb2.AuthTokens:
    """The account's refresh token with an access token that expired a minute ago. With
    `claims_fresh`, the expiry time the client keeps says it is still good (a clock skew, say),
    so only the gateway's UNAUTHENTICATED reveals it."""
    stale = user_pb2.AuthTokens()
    stale.CopyFrom(account.tokens)
    stale.access_token = tokens.signer.mint(account.user_id, kind="user", scopes=[], ttl_s=-60)
    stamp = time.time() + (600 if claims_fresh else -60)
    stale.access_token_expire_time.CopyFrom(timestamp_pb2.Timestamp(seconds=int(stamp)))
    return stale


async def test_calls_need_a_sign_in_and_send_the_access_token(client: NexusClient, alice: Account) -> None:
    with pytest.raises(NotSignedIn):
        await client.get_me()
    await client.sign_in(alice.email, PASSWORD)
    assert (await client.get_me()).user.id == alice.user_id


async def test_an_unauthenticated_call_is_refreshed_and_retried_once(
    client: NexusClient, sign_up: SignUp, tokens: Tokens
) -> None:
    account = await sign_up()
    client.use_tokens(expired_access(tokens, account, claims_fresh=True))
    assert (await client.get_me()).user.id == account.user_id
    assert client.tokens is not None and client.tokens.refresh_token != account.tokens.refresh_token


async def test_a_token_about_to_expire_is_refreshed_before_the_call(
    platform: Platform, sign_up: SignUp, tokens: Tokens
) -> None:
    account = await sign_up()
    seen: list[str] = []
    async with NexusClient(platform.gateway.address, on_tokens=lambda t: seen.append(t.refresh_token)) as client:
        client.use_tokens(expired_access(tokens, account, claims_fresh=False))
        assert (await client.get_me()).user.id == account.user_id
    assert len(seen) == 2 and seen[1] != account.tokens.refresh_token


async def test_concurrent_calls_share_one_refresh_so_the_rotated_token_stays_valid(
    platform: Platform, sign_up: SignUp, tokens: Tokens
) -> None:
    account = await sign_up()
    refreshes: list[str] = []
    async with NexusClient(platform.gateway.address, on_tokens=lambda t: refreshes.append(t.refresh_token)) as client:
        client.use_tokens(expired_access(tokens, account, claims_fresh=True))
        replies = await asyncio.gather(*(client.get_me() for _ in range(8)))
        assert {r.user.id for r in replies} == {account.user_id}
        assert len(refreshes) == 2  # use_tokens, then exactly one refresh
        # Had any call presented the used refresh token, the whole sign-in would be revoked now.
        await client.refresh()
        assert (await client.get_me()).user.id == account.user_id


async def test_a_revoked_sign_in_signs_in_again_only_with_a_remembered_password(
    client: NexusClient, sign_up: SignUp, tokens: Tokens
) -> None:
    account = await sign_up()
    await client.sign_in(account.email, PASSWORD, remember=True)
    assert client.tokens is not None
    await client.stub.SignOut(pb.SignOutRequest(refresh_token=client.tokens.refresh_token))  # revoked elsewhere
    client.use_tokens(expired_access(tokens, Account(account.user_id, "", "", client.tokens), claims_fresh=True))
    assert (await client.get_me()).user.id == account.user_id

    await client.sign_in(account.email, PASSWORD)  # not remembered
    assert client.tokens is not None
    await client.stub.SignOut(pb.SignOutRequest(refresh_token=client.tokens.refresh_token))
    client.use_tokens(expired_access(tokens, Account(account.user_id, "", "", client.tokens), claims_fresh=True))
    failure = await rpc_error(client.get_me())
    assert failure.code == grpc.StatusCode.UNAUTHENTICATED


# -- resumable streams ----------------------------------------------------------------------------


async def produce(worker: Worker, scan: Scan, batches: int, restart: Callable[[], Any], at: int) -> None:
    """The worker's side: batches of messages, a restart of some server after batch `at`, finish."""
    claimed = await worker.claim(scan.agent_id)
    for n in range(batches):
        await worker.say(claimed, *(f"m{n}.{i}" for i in range(3)))
        await asyncio.sleep(0.02)  # paced like a model's output, so the stream outlives the restart
        if n == at:
            await restart()
    await worker.finish(claimed)


def resumes(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.fields["code"] for r in caplog.records if r.getMessage() == "stream dropped; resuming"]  # type: ignore[attr-defined]


async def test_a_stream_resumes_across_a_gateway_restart_with_each_event_once(
    settings: Settings,
    platform: Platform,
    alice: Account,
    scan: Scan,
    worker: Worker,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="nexus.client")
    port = free_port()
    servers: list[Any] = []

    async def start() -> None:
        context = extra_server("gateway", settings, port=port)
        servers.append((context, await context.__aenter__()))

    async def restart() -> None:
        context, _ = servers.pop()
        await context.__aexit__(None, None, None)  # drains: open streams end with UNAVAILABLE
        await start()

    await start()
    try:
        async with NexusClient(f"127.0.0.1:{port}") as client:
            client.use_tokens(alice.tokens)
            task = await client.run_command(f"{scan.trigger} https://acme.com")
            seen: list[task_pb2.TaskEvent] = []

            async def consume() -> None:
                async for event in client.stream_task(task.task_id):
                    seen.append(event)

            consumer = asyncio.ensure_future(consume())
            await produce(worker, scan, batches=6, restart=restart, at=2)
            await asyncio.wait_for(consumer, 30)
    finally:
        for context, _ in servers:
            await context.__aexit__(None, None, None)
    final = (await client_task(platform, alice, task.task_id)).last_seq
    assert [e.seq for e in seen] == list(range(1, final + 1))
    assert seen[-1].metadata["status"] == "finished"
    assert resumes(caplog)[:1] == ["UNAVAILABLE"]  # the stream did drop, and was resumed


async def test_a_stream_resumes_across_a_runtime_restart_with_each_event_once(
    settings: Settings,
    platform: Platform,
    alice: Account,
    scan: Scan,
    worker: Worker,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The gateway's runtime restarts mid-stream; the worker keeps writing through another replica
    (the session's runtime, same database) while it is down."""
    caplog.set_level(logging.INFO, logger="nexus.client")
    port = free_port()
    runtimes: list[Any] = []

    async def start_runtime() -> None:
        context = extra_server("runtime", settings, port=port)
        runtimes.append((context, await context.__aenter__()))

    async def restart() -> None:
        context, _ = runtimes.pop()
        await context.__aexit__(None, None, None)
        # Down for a moment: the drain's UNAVAILABLE, then at least one reconnect that fails.
        await eventually(lambda: len(resumes(caplog)) >= 2, "a reconnect to fail while the runtime is down")
        await start_runtime()

    await start_runtime()
    try:
        gateway_settings = settings.with_overrides(addresses={"runtime": f"127.0.0.1:{port}"})
        async with extra_server("gateway", gateway_settings) as gateway, NexusClient(gateway.address) as client:
            client.use_tokens(alice.tokens)
            task = await client.run_command(f"{scan.trigger} https://acme.com")
            seen = []

            async def consume() -> None:
                async for event in client.stream_task(task.task_id):
                    seen.append(event.seq)

            consumer = asyncio.ensure_future(consume())
            await produce(worker, scan, batches=6, restart=restart, at=2)
            await asyncio.wait_for(consumer, 30)
    finally:
        for context, _ in runtimes:
            await context.__aexit__(None, None, None)
    final = (await client_task(platform, alice, task.task_id)).last_seq
    assert seen == list(range(1, final + 1))
    assert resumes(caplog)[:1] == ["UNAVAILABLE"]


async def test_a_stream_refused_by_a_full_stream_budget_is_retried_after_the_wait(
    settings: Settings, alice: Account, scan: Scan, worker: Worker, caplog: pytest.LogCaptureFixture
) -> None:
    """A gateway whose one stream slot is taken answers RESOURCE_EXHAUSTED with RetryInfo: the
    client waits and tries again, and gets the whole stream once the slot is free."""
    caplog.set_level(logging.INFO, logger="nexus.client")
    async with (
        extra_server("gateway", settings.with_overrides(max_open_streams=1, retry_after_s=0.1)) as gateway,
        NexusClient(gateway.address) as client,
    ):
        client.use_tokens(alice.tokens)
        task = await client.run_command(f"{scan.trigger} https://acme.com")
        hog = client.stub.StreamTask(pb.StreamTaskRequest(task_id=task.task_id), metadata=alice.md)
        first = await hog.read()  # holds the one slot
        assert isinstance(first, task_pb2.TaskEvent) and first.seq == 1

        async def consume() -> list[int]:
            return [event.seq async for event in client.stream_task(task.task_id)]

        consumer = asyncio.ensure_future(consume())

        def refused_and_waiting() -> bool:
            if consumer.done():
                consumer.result()  # a client that gave up on the refusal fails the test here
            return "RESOURCE_EXHAUSTED" in resumes(caplog)

        await eventually(refused_and_waiting, "the client to be refused and to wait")
        hog.cancel()
        claimed = await worker.claim(scan.agent_id)
        await worker.say(claimed, "done")
        await worker.finish(claimed)
        seen = await asyncio.wait_for(consumer, 30)
        final = (await client.get_task(task.task_id)).last_seq
    assert seen == list(range(1, final + 1))


async def test_resuming_from_a_seq_yields_only_later_events(
    platform: Platform, alice: Account, scan: Scan, worker: Worker
) -> None:
    async with NexusClient(platform.gateway.address) as client:
        client.use_tokens(alice.tokens)
        task = await client.run_command(f"{scan.trigger} https://acme.com")
        claimed = await worker.claim(scan.agent_id)
        await worker.say(claimed, "a", "b")
        await worker.finish(claimed)
        final = (await client.get_task(task.task_id)).last_seq
        assert [e.seq async for e in client.stream_task(task.task_id, after_seq=3)] == list(range(4, final + 1))


async def client_task(platform: Platform, account: Account, task_id: str) -> task_pb2.Task:
    async with NexusClient(platform.gateway.address) as client:
        client.use_tokens(account.tokens)
        return await client.get_task(task_id)
