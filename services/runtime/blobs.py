"""Where artifact bytes live: a small blob-store interface and its default, a content-addressed
directory under the data dir.

The service sees only `BlobStore`: stage bytes (hashing them on the way), address them by
digest, commit staged bytes to their address, open, delete. An S3-compatible store implements
the same five calls (stage to a temporary key or a multipart upload, commit by copy, …) and is
chosen in `open_store`; nothing else changes.

Local layout (`<data_dir>/artifacts/`):
- `tmp/<random>`: bytes being received; removed when an upload fails or is cut off;
- `sha256/<aa>/<bb>/<digest>`: committed bytes, once per digest, whoever uploaded them.
`storage_uri` is `local:sha256/<aa>/<bb>/<digest>`, relative to the store's root, so the data
dir can move. When bytes may be deleted (no artifact holds them any more) is decided by the
artifact store, under a per-digest lock (store/artifacts.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, Protocol

from nexus.kit.config import Settings
from nexus.kit.errors import DataLoss


class Staged(Protocol):
    """Bytes received so far, not yet visible anywhere."""

    @property
    def size(self) -> int: ...

    def hexdigest(self) -> str: ...

    async def write(self, chunk: bytes) -> None: ...


class BlobStore(Protocol):
    def stage(self) -> contextlib.AbstractAsyncContextManager[Staged]:
        """A place for incoming bytes; whatever was not committed is gone when the block exits."""
        ...

    def address(self, digest: str) -> str:
        """The storage_uri of the bytes with this sha256."""
        ...

    async def commit(self, staged: Staged, uri: str) -> None:
        """Makes the staged bytes readable at `uri`; if the same bytes are there already, they
        are kept once."""
        ...

    def open(self, uri: str, offset: int, chunk_bytes: int) -> AsyncIterator[bytes]:
        """The bytes at `uri` from `offset`, in chunks."""
        ...

    async def delete(self, uri: str) -> None:
        """Removes the bytes at `uri` (nothing there: no error)."""
        ...


class _LocalStaged:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[bytes] | None = path.open("xb")
        self._hash = hashlib.sha256()
        self._size = 0

    @property
    def size(self) -> int:
        return self._size

    def hexdigest(self) -> str:
        return self._hash.hexdigest()

    def _write(self, chunk: bytes) -> None:
        assert self._file is not None
        self._hash.update(chunk)
        self._file.write(chunk)

    async def write(self, chunk: bytes) -> None:
        # Hashing and writing a MiB costs milliseconds: off the event loop, so appends and
        # streams of other tasks do not wait for an upload.
        await asyncio.to_thread(self._write, chunk)
        self._size += len(chunk)

    def finish(self) -> None:
        """Flushed to disk before it is named by digest (and before its row commits)."""
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None

    def discard(self) -> None:
        # Synchronous on purpose: it runs while the handler is being cancelled.
        if self._file is not None:
            self._file.close()
            self._file = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class LocalBlobStore:
    SCHEME = "local:"

    def __init__(self, root: Path) -> None:
        self.root = root
        self._tmp = root / "tmp"
        self._tmp.mkdir(parents=True, exist_ok=True, mode=0o700)

    @contextlib.asynccontextmanager
    async def stage(self) -> AsyncIterator[Staged]:
        staged = _LocalStaged(self._tmp / secrets.token_hex(16))
        try:
            yield staged
        finally:
            staged.discard()

    def address(self, digest: str) -> str:
        return f"{self.SCHEME}sha256/{digest[:2]}/{digest[2:4]}/{digest}"

    def path(self, uri: str) -> Path:
        if not uri.startswith(self.SCHEME + "sha256/"):
            raise DataLoss("the artifact's bytes are in a store this server does not have", reason="BLOB_STORE_UNKNOWN")
        relative = uri.removeprefix(self.SCHEME)
        digest = relative.rsplit("/", 1)[-1]
        if relative != f"sha256/{digest[:2]}/{digest[2:4]}/{digest}" or len(digest) != 64:
            raise DataLoss("the artifact's storage_uri is malformed", reason="BLOB_URI_MALFORMED")
        return self.root / relative

    async def commit(self, staged: Staged, uri: str) -> None:
        assert isinstance(staged, _LocalStaged)
        target = self.path(uri)

        def move() -> None:
            staged.finish()
            if target.exists():
                return  # the same bytes are stored already: keep one copy (the temp goes on exit)
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.rename(staged.path, target)

        await asyncio.to_thread(move)

    async def open(self, uri: str, offset: int, chunk_bytes: int) -> AsyncIterator[bytes]:
        path = self.path(uri)
        try:
            handle = await asyncio.to_thread(path.open, "rb")
        except FileNotFoundError:
            raise DataLoss("the artifact's bytes are missing from the blob store", reason="BLOB_MISSING") from None
        try:
            await asyncio.to_thread(handle.seek, offset)
            while chunk := await asyncio.to_thread(handle.read, chunk_bytes):
                yield chunk
        finally:
            handle.close()

    async def delete(self, uri: str) -> None:
        path = self.path(uri)

        def remove() -> None:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

        await asyncio.to_thread(remove)


def open_store(settings: Settings) -> BlobStore:
    """The configured blob store: today the local directory (an S3-compatible one would be
    chosen here from settings)."""
    return LocalBlobStore(settings.data_dir / "artifacts")
