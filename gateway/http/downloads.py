"""`GET /v1/artifacts/{artifact_id}`: an artifact's bytes with its content type, through the
servicer's own DownloadArtifact (bearer header; the runtime answers 404 for anyone else's).

The bytes are the task's, not the console's: the answer is sandboxed (`Content-Security-Policy:
sandbox`), so an HTML or SVG artifact opened in a tab runs as an opaque origin and cannot reach
the console's storage. `?download=1` asks the browser to save it instead of showing it.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any, cast
from urllib.parse import quote

from gateway.http.events import NoDeadline
from gateway.http.web import Request
from gateway.servicer import GatewayServicer
from nexus.gateway.v1 import gateway_pb2 as pb
from nexus.kit import connect
from nexus.kit.http import Authenticator

SANDBOX = b"sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'"
DEFAULT_TYPE = "application/octet-stream"


def _disposition(name: str, attachment: bool) -> bytes:
    kind = "attachment" if attachment else "inline"
    ascii_name = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in name) or "artifact"
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}".encode("latin-1")


class ArtifactDownloads:
    def __init__(self, servicer: GatewayServicer, authenticator: Authenticator, domain: str) -> None:
        self._servicer = servicer
        self._authenticator = authenticator
        self._domain = domain

    async def __call__(self, request: Request, artifact_id: str) -> None:
        header = request.header("authorization")
        parts = None
        try:
            await connect.authenticate(
                self._authenticator, {"authorization": header} if header is not None else {}, public=False
            )
            parts = cast(
                AsyncGenerator[Any, None],
                self._servicer.DownloadArtifact(pb.DownloadArtifactRequest(artifact_id=artifact_id), NoDeadline()),
            )
            first = await anext(parts)
        except Exception as exc:
            if parts is not None:
                await parts.aclose()
            await request.fail(exc, self._domain)
            return
        try:
            artifact = first.artifact
            content_type = (artifact.content_type or DEFAULT_TYPE).encode("latin-1", "replace")
            attachment = request.query().get("download") in ("1", "true")
            await request.start(
                200,
                [
                    (b"content-type", content_type),
                    (b"content-length", str(artifact.size_bytes).encode()),
                    (b"content-disposition", _disposition(artifact.display_name, attachment)),
                    (b"content-security-policy", SANDBOX),
                    (b"cache-control", b"private, no-store"),
                ],
            )
            if first.chunk:
                await request.body(first.chunk, more=True)
            async for part in parts:
                await request.body(part.chunk, more=True)
            await request.body(b"")
        finally:
            await parts.aclose()
