"""The local demo account of `nexus run`: created on first use, its credentials kept in the data
dir (`demo-account.json`, mode 0600, the directory 0700), signed in on every later run."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import stat
from pathlib import Path

import grpc

from nexus.client.client import Credentials, NexusClient

FILE_NAME = "demo-account.json"


class DemoAccountError(Exception):
    """The demo account cannot be used (its file is unreadable, or the server refuses it)."""


def path(data_dir: Path) -> Path:
    return data_dir / FILE_NAME


def load_or_create(data_dir: Path) -> tuple[Credentials, bool]:
    """The demo credentials, and whether they were just created. Creation is atomic (O_EXCL): of
    two first runs at once, one writes the file and the other reads it."""
    file = path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    credentials = Credentials(f"demo-{secrets.token_hex(6)}@example.com", secrets.token_urlsafe(24))
    try:
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read(file), False
    with os.fdopen(fd, "w") as out:
        json.dump({"email": credentials.email, "password": credentials.password}, out)
    return credentials, True


def _read(file: Path) -> Credentials:
    if stat.S_IMODE(file.stat().st_mode) & 0o077:
        with contextlib.suppress(OSError):
            os.chmod(file, 0o600)  # it holds a password: nobody else may read it
    try:
        data = json.loads(file.read_text())
        return Credentials(str(data["email"]), str(data["password"]))
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DemoAccountError(f"cannot read {file}: {err}; delete it to create a new demo account") from None


async def sign_in(client: NexusClient, data_dir: Path) -> Credentials:
    """Signs `client` in as the demo account, signing it up first when it is new (or when the
    platform's database no longer has it, e.g. after a reset)."""
    credentials, created = load_or_create(data_dir)
    if not created:
        try:
            await client.sign_in(credentials.email, credentials.password, remember=True)
            return credentials
        except grpc.aio.AioRpcError as err:
            if err.code() != grpc.StatusCode.UNAUTHENTICATED:
                raise
    try:
        await client.sign_up(credentials.email, credentials.password, "Demo", remember=True)
    except grpc.aio.AioRpcError as err:
        if err.code() != grpc.StatusCode.ALREADY_EXISTS:
            raise
        try:  # another first run signed it up a moment ago
            await client.sign_in(credentials.email, credentials.password, remember=True)
        except grpc.aio.AioRpcError as again:
            if again.code() != grpc.StatusCode.UNAUTHENTICATED:
                raise
            raise DemoAccountError(
                f"the platform refuses the demo account in {path(data_dir)}; delete the file to create a new one"
            ) from None
    return credentials
