"""Credential key rotation while the service runs, and signing key rotation through GetKeySet."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import jwt
import pytest

from launch.registry import ONTOLOGY, USER
from nexus.kit import config, migrations
from nexus.kit.config import Settings
from nexus.kit.server import NexusServer, Resources, running
from nexus.kit.tokens import FetchedKeySet, TokenSigner, TokenVerifier, ensure_signing_key, generate_signing_key
from nexus.kit.validation import struct_to_dict
from nexus.ontology.v1 import ontology_pb2, ontology_pb2_grpc
from nexus.user.v1 import user_pb2, user_pb2_grpc
from services.user.keys import CredentialKeys, add_key
from services.user.rotation import rotate
from services.user.store.rotation import RotationStore
from tests.support import NEXUS_COMMAND, Tokens, rpc_error
from tests.user.conftest import PASSWORD, db
from tests.user.test_connections import new_connection, reveal

if TYPE_CHECKING:
    from nexus.user.v1.user_pb2_grpc import UserServiceAsyncStub


@dataclass
class Platform:
    settings: Settings
    server: NexusServer
    stub: UserServiceAsyncStub
    tokens: Tokens


@pytest.fixture
async def platform(scratch_settings: Settings) -> AsyncIterator[Platform]:
    """A user service of its own (own database, own keys), so rotation sees only its rows; with
    an ontology service beside it, since connections name an agent."""
    s = scratch_settings
    migrations.upgrade(s, USER)
    migrations.upgrade(s, ONTOLOGY)
    key = ensure_signing_key(s.resolved_signing_keys_dir)
    add_key(s.resolved_credential_keys_file)
    tokens = Tokens(TokenSigner(key, issuer=s.token_issuer, audience=s.token_audience))
    async with (
        running(ONTOLOGY, s, port=s.port("ontology")) as ontology,
        running(USER, s, port=s.port("user")) as server,
        grpc.aio.insecure_channel(server.address) as channel,
        grpc.aio.insecure_channel(ontology.address) as ontology_channel,
    ):
        await ontology_pb2_grpc.OntologyServiceStub(ontology_channel).CreateAgent(
            ontology_pb2.CreateAgentRequest(agent=ontology_pb2.Agent(name="Creator"), agent_id="agent_creator_v1"),
            metadata=tokens.service("ontology.admin"),
        )
        yield Platform(s, server, user_pb2_grpc.UserServiceStub(channel), tokens)


def key_ids(settings: Settings) -> dict[str, str]:
    with db(settings) as conn:
        return {str(r[0]): r[1] for r in conn.execute("SELECT id, key_id FROM users.user_connection")}


async def test_rotation_moves_every_row_while_the_service_keeps_serving(platform: Platform) -> None:
    stub, settings = platform.stub, platform.settings
    keys_file = settings.resolved_credential_keys_file
    account = await stub.SignUp(user_pb2.SignUpRequest(email="rotate@example.com", password=PASSWORD))
    md = (("authorization", f"Bearer {account.tokens.access_token}"),)
    secrets = {}
    for i in range(7):
        created = await stub.CreateConnection(new_connection({"api_key": f"secret-{i}"}), metadata=md)
        secrets[created.id] = f"secret-{i}"
    old_kid = next(iter(set(key_ids(settings).values())))

    # An operator adds a key (`nexus keys add-credential`); the running service writes with it.
    new = add_key(keys_file)
    created = await stub.CreateConnection(new_connection({"api_key": "secret-new"}), metadata=md)
    secrets[created.id] = "secret-new"
    assert key_ids(settings)[created.id] == new.kid
    # Rows under the old key still decrypt.
    for ident, secret in secrets.items():
        assert struct_to_dict((await reveal(stub, platform.tokens, ident)).credentials) == {"api_key": secret}

    # `nexus keys rotate`, interrupted after one batch, then resumed.
    store = RotationStore(platform.server.resources.database("user"))
    partial = await rotate(store, CredentialKeys(keys_file), batch_size=3, max_batches=1)
    assert (partial.moved, partial.complete) == (3, False)
    assert sorted(key_ids(settings).values()).count(old_kid) == 4
    for ident, secret in secrets.items():  # a half-rotated table serves every row
        assert struct_to_dict((await reveal(stub, platform.tokens, ident)).credentials) == {"api_key": secret}
    finished = await rotate(store, CredentialKeys(keys_file), batch_size=3)
    assert finished.complete and finished.moved == 4 and not finished.failed
    assert set(key_ids(settings).values()) == {new.kid}

    # A third key added and rotated to by another process, before this service wrote anything
    # with it: the service meets an unknown key id and re-reads the key file.
    newest = add_key(keys_file)
    code, output = await cli(settings, "keys", "rotate", "--batch-size", "5")
    assert code == 0, output
    assert "8 re-encrypted" in output
    assert set(key_ids(settings).values()) == {newest.kid}
    for ident, secret in secrets.items():
        assert struct_to_dict((await reveal(stub, platform.tokens, ident)).credentials) == {"api_key": secret}


async def cli(settings: Settings, *args: str) -> tuple[int, str]:
    """Runs `nexus …` as an operator would, against this test's database and key files."""
    env = {**os.environ, **config.to_env(settings), "NEXUS_LOG_LEVEL": "WARNING"}
    process = await asyncio.create_subprocess_exec(
        *NEXUS_COMMAND,
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        stdin=asyncio.subprocess.DEVNULL,
    )
    output, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, output.decode()


async def test_add_credential_command_appends_a_newest_key(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, credential_keys_file=tmp_path / "ring" / "c.keys")
    code, output = await cli(settings, "keys", "add-credential")
    assert code == 0, output
    code, output = await cli(settings, "keys", "add-credential")
    assert code == 0, output
    ring = CredentialKeys(settings.resolved_credential_keys_file).ring
    assert len(ring.kids()) == 2 and ring.newest.kid in output
    assert settings.resolved_credential_keys_file.stat().st_mode & 0o777 == 0o600


async def test_a_token_signed_by_a_newer_key_verifies_in_another_service_after_a_key_set_refresh(
    platform: Platform, tmp_path: Path
) -> None:
    settings = platform.settings
    # Another service on another machine: no key files, so it fetches GetKeySet from the user service.
    elsewhere = settings.with_overrides(
        signing_keys_dir=tmp_path / "no-keys-here", addresses={"user": platform.server.address}
    )
    peer = Resources(elsewhere)
    try:
        keys_stub = user_pb2_grpc.UserServiceStub(peer.channel("user"))

        async def fetch() -> dict[str, bytes]:
            reply = await keys_stub.GetKeySet(user_pb2.GetKeySetRequest(), timeout=5)
            return {key.kid: key.public_key for key in reply.keys}

        # The kit's verifier refreshes at most every 5 s; this one may refresh at once.
        verifier = TokenVerifier(
            FetchedKeySet(fetch, min_refresh_s=0), issuer=settings.token_issuer, audience=settings.token_audience
        )
        account = await platform.stub.SignUp(user_pb2.SignUpRequest(email="keys@example.com", password=PASSWORD))
        old_token = account.tokens.access_token
        assert (await peer.verifier.verify(old_token)).subject == account.user.id  # the default wiring
        assert (await verifier.verify(old_token)).subject == account.user.id

        # Rotation: publish a second key first (GetKeySet lists it at once), then restart the
        # user service, which signs with the newest key.
        second = generate_signing_key(settings.resolved_signing_keys_dir)
        published = await platform.stub.GetKeySet(user_pb2.GetKeySetRequest())
        assert second.kid in {k.kid for k in published.keys} and len(published.keys) == 2
        assert all(k.algorithm == "EdDSA" and len(k.public_key) == 32 for k in published.keys)
        async with running(USER, settings) as restarted, grpc.aio.insecure_channel(restarted.address) as channel:
            stub = user_pb2_grpc.UserServiceStub(channel)
            signed_in = await stub.SignIn(user_pb2.SignInRequest(email="keys@example.com", password=PASSWORD))
            new_token = signed_in.access_token
        assert jwt.get_unverified_header(new_token)["kid"] == second.kid
        # The verifier has never seen the new kid: it refreshes its key set and accepts the token.
        assert (await verifier.verify(new_token)).subject == account.user.id
        assert (await verifier.verify(old_token)).subject == account.user.id
    finally:
        await peer.close()


async def test_a_create_retried_after_a_new_credential_key_is_still_the_same_request(platform: Platform) -> None:
    stub = platform.stub
    account = await stub.SignUp(user_pb2.SignUpRequest(email="retry@example.com", password=PASSWORD))
    md = (("authorization", f"Bearer {account.tokens.access_token}"),)
    request = new_connection({"api_key": "secret"})
    request.request_id = str(uuid.uuid4())
    first = await stub.CreateConnection(request, metadata=md)
    add_key(platform.settings.resolved_credential_keys_file)
    assert await stub.CreateConnection(request, metadata=md) == first
    request.connection.display_name = "Another"
    failure = await rpc_error(stub.CreateConnection(request, metadata=md))
    assert failure.reason == "REQUEST_ID_REUSED"
