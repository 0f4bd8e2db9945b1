"""A service's second front door: an ASGI app on an HTTP port, started and stopped with its gRPC
server (DESIGN §2: the gateway's HTTP port serves browsers).

Hypercorn serves the app in the server's own event loop, so the app calls the same code, on the
same channels, as the gRPC handlers. Shutdown mirrors the gRPC side: `drain()` ends open streams
at once (a stream's client resumes elsewhere: an EventSource reconnects with Last-Event-ID, a
Connect client with its last seq), then in-flight requests get the grace period. The access log
is off: a query string may hold a stream ticket, and the app logs one line per request itself,
without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any, Protocol

from hypercorn.asyncio import serve
from hypercorn.config import Config

from nexus.kit.config import Settings
from nexus.kit.errors import Unavailable

log = logging.getLogger("nexus.http")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class Authenticator(Protocol):
    """The gRPC server's own auth interceptor, as the HTTP side uses it."""

    async def authenticate(self, metadata: Any, *, public: bool) -> None: ...


class StreamDrain:
    """Tracks the app's open streams so shutdown can end them with UNAVAILABLE instead of waiting
    out the grace period (the HTTP twin of the gRPC StreamDrainInterceptor)."""

    def __init__(self) -> None:
        self._draining = asyncio.Event()
        self._streams: set[asyncio.Task[Any]] = set()

    @property
    def draining(self) -> bool:
        return self._draining.is_set()

    def drain(self) -> None:
        self._draining.set()
        for task in list(self._streams):
            task.cancel()

    @contextlib.contextmanager
    def tracked(self) -> Iterator[None]:
        """Wraps one stream; a drain that cancels it surfaces as Unavailable (SHUTTING_DOWN)."""
        if self._draining.is_set():
            raise Unavailable("the server is shutting down; reconnect", reason="SHUTTING_DOWN")
        task = asyncio.current_task()
        assert task is not None
        self._streams.add(task)
        try:
            yield
        except asyncio.CancelledError:
            if not self._draining.is_set():
                raise
            task.uncancel()
            raise Unavailable("the server is shutting down; reconnect and resume", reason="SHUTTING_DOWN") from None
        finally:
            self._streams.discard(task)


@dataclass(frozen=True)
class HttpFrontDoor:
    """What a service serves on its HTTP port: the app, and the drain of its streams."""

    app: ASGIApp
    drain: StreamDrain


# A service's HTTP front door, made by the server with its own authenticator.
HttpFrontDoorFactory = Callable[[Authenticator], HttpFrontDoor]


class HttpServer:
    """One ASGI app on one port, in this event loop, until `stop()`."""

    def __init__(self, app: ASGIApp, settings: Settings, *, name: str, drain: StreamDrain | None = None) -> None:
        self._app = app
        self._settings = settings
        self._name = name
        self._drain = drain
        self._stop = asyncio.Event()
        self._serving: asyncio.Task[None] | None = None
        self.port = 0

    @property
    def address(self) -> str:
        return f"{self._settings.host}:{self.port}"

    def _config(self, sock: socket.socket) -> Config:
        config = Config()
        # The socket is bound here, so port 0 (tests) works and the real port is known.
        config.bind = [f"fd://{sock.fileno()}"]
        config.accesslog = None
        config.errorlog = log
        config.include_server_header = False
        config.graceful_timeout = self._settings.shutdown_grace_s
        # Request bodies (Connect messages) are bounded by the message limit; the app checks it.
        config.h11_max_incomplete_size = 64 * 1024
        if self._settings.tls_cert_file and self._settings.tls_key_file:
            config.certfile = str(self._settings.tls_cert_file)
            config.keyfile = str(self._settings.tls_key_file)
        return config

    async def start(self, port: int) -> str:
        sock = socket.socket(socket.AF_INET6 if ":" in self._settings.host else socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind((self._settings.host, port))
            sock.listen(128)
        except OSError:
            sock.close()
            raise
        self.port = int(sock.getsockname()[1])
        config = self._config(sock)
        # Hypercorn owns the descriptor from here on (it wraps it in a socket of its own).
        sock.detach()
        self._serving = asyncio.create_task(serve(self._app, config, shutdown_trigger=self._stop.wait, mode="asgi"))  # type: ignore[arg-type]
        await self._until_accepting()
        log.info("serving", extra={"fields": {"service": self._name, "http": self.address}})
        return self.address

    async def _until_accepting(self, timeout_s: float = 10.0) -> None:
        """Hypercorn starts listening a few loop turns after serve() begins."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            if self._serving is not None and self._serving.done():
                self._serving.result()  # raises why it stopped
                raise RuntimeError("the HTTP server stopped while starting")
            try:
                _, writer = await asyncio.open_connection(self._settings.host, self.port)
            except OSError:
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(0.01)
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return

    async def stop(self) -> None:
        """Ends open streams (UNAVAILABLE), then gives in-flight requests the grace period."""
        if self._drain is not None:
            self._drain.drain()
        self._stop.set()
        if self._serving is not None:
            await self._serving
        log.info("stopped", extra={"fields": {"service": self._name, "http": self.address}})
