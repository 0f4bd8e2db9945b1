"""Client channels to Nexus services, with the same limits and keepalive as the servers."""

from __future__ import annotations

import grpc

from nexus.kit.config import Settings


def channel_options(settings: Settings) -> list[tuple[str, int]]:
    return [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        # A peer that was down (restarted, or not started yet) is reached again within seconds:
        # grpc's default backoff grows to two minutes, and every call made meanwhile fails at once
        # with UNAVAILABLE. Channels with the same target and options share one connection, so
        # one early failure would otherwise hold back every channel of the process.
        ("grpc.initial_reconnect_backoff_ms", 200),
        ("grpc.max_reconnect_backoff_ms", 5_000),
    ]


def open_channel(settings: Settings, target: str) -> grpc.aio.Channel:
    """`target` is host:port. TLS is used when a CA file is configured."""
    options = channel_options(settings)
    if settings.tls_ca_file is not None:
        credentials = grpc.ssl_channel_credentials(root_certificates=settings.tls_ca_file.read_bytes())
        return grpc.aio.secure_channel(target, credentials, options=options)
    return grpc.aio.insecure_channel(target, options=options)
