"""kit.http: an ASGI app on a second port, started with its server, its streams drained on stop;
and the settings of HTTP ports and CORS."""

from __future__ import annotations

import asyncio

import pyqwest
import pytest

from launch.registry import SERVICES
from nexus.kit import config
from nexus.kit.errors import Unavailable
from nexus.kit.http import HttpServer, Message, Receive, Scope, Send, StreamDrain


def test_the_http_port_and_cors_come_from_the_environment_and_go_back_to_it() -> None:
    default = config.from_env({}, services=SERVICES)
    assert default.http_ports == {"gateway": 50080} and default.cors_origins == ()
    custom = config.from_env(
        {"NEXUS_GATEWAY_HTTP_PORT": "6080", "NEXUS_CORS_ORIGINS": "https://a.example/, https://b.example"},
        services=SERVICES,
    )
    assert custom.http_port("gateway") == 6080
    assert custom.cors_origins == ("https://a.example", "https://b.example")
    assert config.from_env(config.to_env(custom), services=SERVICES).http_ports == custom.http_ports
    assert config.from_env(config.to_env(custom), services=SERVICES).cors_origins == custom.cors_origins


async def test_stop_ends_an_open_stream_with_unavailable_and_the_port_closes(settings: config.Settings) -> None:
    drain = StreamDrain()
    ended: list[BaseException] = []
    streaming = asyncio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            message: Message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
                await receive()
                await send({"type": "lifespan.shutdown.complete"})
            return
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        try:
            with drain.tracked():
                await send({"type": "http.response.body", "body": b"first\n", "more_body": True})
                streaming.set()
                await asyncio.Event().wait()  # until drained
        except Unavailable as exc:
            ended.append(exc)
            await send({"type": "http.response.body", "body": b"bye\n"})

    server = HttpServer(app, settings, name="test", drain=drain)
    await server.start(0)
    client = pyqwest.Client()
    body: list[bytes] = []

    async def read() -> None:
        async with client.stream("GET", f"http://{server.address}/") as response:
            async for chunk in response.content:
                body.append(bytes(chunk))

    reading = asyncio.create_task(read())
    await asyncio.wait_for(streaming.wait(), 10)
    await asyncio.wait_for(server.stop(), 10)
    await asyncio.wait_for(reading, 10)
    assert b"".join(body) == b"first\nbye\n"
    assert [getattr(e, "reason", None) for e in ended] == ["SHUTTING_DOWN"]
    with pytest.raises(ConnectionError):  # the port no longer answers
        await asyncio.wait_for(client.get(f"http://{server.address}/"), 5)
