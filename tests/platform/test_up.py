"""`nexus up` trusts no server it did not start. With one of its ports taken, by a plain listener or
by another Nexus-like server that answers health checks SERVING, it starts nothing, says which
port is in use and for which service, and exits non-zero; nothing it ran outlives it. A child whose
port is taken between the check and its start fails `up` as well, however SERVING its port looks."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from launch import platform
from nexus.kit import config
from nexus.kit.config import Settings
from tests.conftest import free_port
from tests.support import NEXUS_COMMAND

UP_TIMEOUT_S = 120.0


def listener(port: int) -> socket.socket:
    """A plain TCP listener on the port, speaking no gRPC."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", port))
    sock.listen()
    return sock


async def serving_health_server(port: int) -> grpc.aio.Server:
    """A server that answers every health check SERVING, bound as a Nexus server binds (no port
    sharing): what another `nexus up` on the same port looks like from outside."""
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    assert server.add_insecure_port(f"127.0.0.1:{port}") == port
    await server.start()
    await servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    return server


@pytest.fixture
def up_settings(scratch_settings: Settings, tmp_path: Path) -> Settings:
    """Free ports, a database of its own and a data dir of its own, as `make up` would have."""
    return scratch_settings.with_overrides(data_dir=tmp_path / "data")


def processes_of(data_dir: Path) -> list[int]:
    """Pids of live processes whose environment names the data dir: children `up` left behind."""
    marker = f"NEXUS_DATA_DIR={data_dir}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue  # gone, or not ours to read
    return found


def in_use(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


async def nexus_up(settings: Settings) -> tuple[int, str, str]:
    env = {**os.environ, **config.to_env(settings)}
    process = await asyncio.create_subprocess_exec(
        *NEXUS_COMMAND,
        "up",
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), UP_TIMEOUT_S)
    except TimeoutError:
        process.terminate()
        await process.wait()
        raise
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


def assert_started_nothing(settings: Settings, taken: str) -> None:
    assert not (settings.data_dir / "logs").exists(), "a service was started"
    assert processes_of(settings.data_dir) == []
    for name, port in settings.ports.items():
        if name != taken:
            assert not in_use(port), f"{name}'s port {port} is still in use"


async def test_a_port_held_by_a_plain_listener_stops_up_before_anything_starts(up_settings: Settings) -> None:
    port = up_settings.port("user")
    with listener(port):
        code, out, err = await nexus_up(up_settings)
    assert code != 0, out
    assert f"port {port} is in use: user cannot listen on 127.0.0.1:{port}" in err
    assert "Nexus is up" not in out
    assert_started_nothing(up_settings, "user")


async def test_a_port_held_by_a_server_that_answers_serving_is_not_mistaken_for_our_service(
    up_settings: Settings,
) -> None:
    port = up_settings.port("ontology")
    impostor = await serving_health_server(port)
    try:
        code, out, err = await nexus_up(up_settings)
    finally:
        await impostor.stop(None)
    assert code != 0, out
    assert f"port {port} is in use: ontology cannot listen on 127.0.0.1:{port}" in err
    assert "Nexus is up" not in out
    assert_started_nothing(up_settings, "ontology")


def test_two_services_given_one_port_are_refused(up_settings: Settings) -> None:
    shared = up_settings.port("user")
    clash = up_settings.with_overrides(ports={**up_settings.ports, "gateway": shared})
    assert platform.port_problems(clash) == [f"port {shared} is given to both user and gateway"]


@pytest.fixture
async def impostor_on_free_port() -> AsyncIterator[int]:
    port = free_port()
    server = await serving_health_server(port)
    yield port
    await server.stop(None)


@pytest.fixture
def user_settings(settings: Settings, impostor_on_free_port: int, tmp_path: Path) -> Settings:
    return settings.with_overrides(data_dir=tmp_path, ports={**settings.ports, "user": impostor_on_free_port})


async def test_a_child_that_exits_while_starting_fails_up_even_when_its_port_answers_serving(
    user_settings: Settings,
) -> None:
    """The race the check before start cannot close: the port is taken after it. The child's
    bind fails and it exits; the SERVING answer on its port comes from somebody else."""
    port = user_settings.port("user")
    child = platform.spawn("user", ["serve", "user"], user_settings, ready_pipe=True)
    try:
        with pytest.raises(platform.StartFailure) as failed:
            await platform.wait_serving(user_settings, child, user_settings.address("user"))
    finally:
        if child.process.poll() is None:
            child.process.kill()
        child.process.wait()
    assert str(failed.value).startswith(f"port {port} is in use: user cannot listen on 127.0.0.1:{port}, and exited")
    assert child.process.returncode not in (None, 0)


async def test_a_child_that_exits_before_serving_fails_up_with_what_it_said(settings: Settings, tmp_path: Path) -> None:
    """Not a port this time: the user service refuses to start without its credential keys."""
    keyless = settings.with_overrides(
        data_dir=tmp_path, credential_keys_file=tmp_path / "nowhere.keys", ports={**settings.ports, "user": free_port()}
    )
    child = platform.spawn("user", ["serve", "user"], keyless, ready_pipe=True)
    try:
        with pytest.raises(platform.StartFailure) as failed:
            await platform.wait_serving(keyless, child, keyless.address("user"))
    finally:
        if child.process.poll() is None:
            child.process.kill()
        child.process.wait()
    message = str(failed.value)
    assert message.startswith(f"user exited before it served (status {child.process.returncode}); its log:")
    assert "nowhere.keys" in message
