"""A user's own large settings never make ListSettings unreadable (DESIGN §5): a setting value
may hold 64 KiB, so a thousand of them (the largest page) would be 64 MiB in one message."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from launch.registry import USER
from nexus.kit.channels import open_channel
from nexus.kit.config import Settings
from nexus.kit.server import NexusServer, running
from nexus.kit.validation import json_to_value
from nexus.user.v1 import user_pb2, user_pb2_grpc
from tests.pages import page_through
from tests.user.conftest import Account, SignUp


@pytest.fixture(scope="module")
async def wide(settings: Settings, user_server: NexusServer) -> AsyncIterator[grpc.aio.Channel]:
    channel = open_channel(settings, user_server.address)
    # Another server's channel to this address (same options, so the same connection in grpc)
    # may have tried before the user server listened and be backing off: wait until it is ready.
    await asyncio.wait_for(channel.channel_ready(), timeout=30)
    yield channel
    await channel.close()


async def test_settings_of_64_kib_each_page_through_each_once(
    wide: grpc.aio.Channel, settings: Settings, sign_up: SignUp
) -> None:
    account: Account = await sign_up()
    stub: Any = user_pb2_grpc.UserServiceStub(wide)
    keys = [f"big.{i:03d}" for i in range(150)]  # 150 of 64 KB: more than one 8 MiB message
    for key in keys:
        value = json_to_value("s" * 64_000)
        await stub.SetSetting(
            user_pb2.SetSettingRequest(setting=user_pb2.Setting(key=key, value=value)), metadata=account.metadata
        )

    async def fetch(token: str) -> Any:
        request = user_pb2.ListSettingsRequest(page_size=1000, page_token=token)
        return await stub.ListSettings(request, metadata=account.metadata)

    listed, pages = await page_through(fetch, lambda r: r.settings, lambda s: s.key, limit=settings.max_message_bytes)
    assert listed == keys and pages > 1


async def test_connections_page_by_size_too(settings: Settings, sign_up: SignUp) -> None:
    """Their items are small, so the cut is shown on a replica with a 20 KiB message limit."""
    account: Account = await sign_up()
    small_limit = 20 * 1024
    async with running(USER, dataclasses.replace(settings, max_message_bytes=small_limit)) as small:
        channel = open_channel(settings, small.address)
        try:
            stub: Any = user_pb2_grpc.UserServiceStub(channel)
            created = []
            for i in range(12):
                connection = user_pb2.Connection(
                    agent_id="agent_a", provider="notion", display_name=f"{i:02d}" + "d" * 198
                )
                request = user_pb2.CreateConnectionRequest(connection=connection)
                request.credentials.update({"token": "t"})
                created.append((await stub.CreateConnection(request, metadata=account.metadata)).id)

            async def fetch(token: str) -> Any:
                request = user_pb2.ListConnectionsRequest(page_size=1000, page_token=token)
                return await stub.ListConnections(request, metadata=account.metadata)

            ids, pages = await page_through(fetch, lambda r: r.connections, lambda c: c.id, limit=small_limit)
            assert ids == created and pages > 1
        finally:
            await channel.close()
