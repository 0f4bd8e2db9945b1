"""Credential envelopes (DESIGN §4): AES-256-GCM bound to the row, with a key ring from config."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import pytest

from launch.registry import USER
from nexus.kit.config import ConfigError, Settings
from nexus.kit.errors import DataLoss
from nexus.kit.server import running
from services.user import app
from services.user.domain import envelope
from services.user.domain.envelope import KeyFileError, RowBinding, parse_key_file
from services.user.keys import CredentialKeys, add_key, ensure_key_file, read_ring
from tests.support import Tokens, rpc_error
from tests.user.conftest import SignUp, db
from tests.user.test_connections import SECRET, new_connection, reveal

if TYPE_CHECKING:
    from nexus.user.v1.user_pb2_grpc import UserServiceAsyncStub

BINDING = RowBinding(connection_id="c1", user_id="u1", provider="notion")


def test_the_associated_data_binds_every_part_of_the_row() -> None:
    key = envelope.new_key()
    sealed = envelope.seal(key, BINDING, {"k": SECRET})
    assert envelope.open_sealed(key, BINDING, sealed.blob) == {"k": SECRET}
    assert SECRET.encode() not in sealed.blob
    for other in [
        RowBinding("c2", "u1", "notion"),
        RowBinding("c1", "u2", "notion"),
        RowBinding("c1", "u1", "github"),
    ]:
        with pytest.raises(DataLoss):
            envelope.open_sealed(key, other, sealed.blob)
    # The key id is bound too: the same bytes under another key id (same key material) fail.
    relabelled = envelope.DataKey("other-kid", key.secret)
    with pytest.raises(DataLoss):
        envelope.open_sealed(relabelled, BINDING, sealed.blob)


def test_every_write_has_a_fresh_nonce_and_any_flipped_bit_fails() -> None:
    key = envelope.new_key()
    a = envelope.seal(key, BINDING, {"k": SECRET})
    b = envelope.seal(key, BINDING, {"k": SECRET})
    assert a.blob[:12] != b.blob[:12] and a.blob != b.blob
    assert a.fingerprint == b.fingerprint
    for position in [0, 12, len(a.blob) // 2, len(a.blob) - 1]:
        tampered = bytearray(a.blob)
        tampered[position] ^= 0x01
        with pytest.raises(DataLoss):
            envelope.open_sealed(key, BINDING, bytes(tampered))
    with pytest.raises(DataLoss):
        envelope.open_sealed(key, BINDING, a.blob[:20])


def test_key_file_format_and_errors_never_show_key_material(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "credentials.keys"
    first = add_key(path)
    second = add_key(path)
    assert path.stat().st_mode & 0o777 == 0o600
    ring = read_ring(path)
    assert ring.kids() == [first.kid, second.kid] and ring.newest.kid == second.kid
    text = path.read_text()
    assert text.startswith("#") and text.count("\n") >= 2
    bad_inputs = ["kid", "kid not-base64!", "kid AAAA", "bad/kid " + "A" * 44]
    for bad in bad_inputs:
        with pytest.raises(KeyFileError) as raised:
            parse_key_file(bad)
        assert "line 1" in str(raised.value)
    secret_line = envelope.format_key_line(first).split()[1]
    with pytest.raises(KeyFileError) as raised:
        parse_key_file(f"a {secret_line}\na {secret_line}\n")
    assert secret_line not in str(raised.value)
    assert secret_line not in repr(first)


def test_prepare_local_creates_one_owner_only_key_file_once(tmp_path: Path) -> None:
    path = tmp_path / "k" / "credentials.keys"
    created = ensure_key_file(path)
    assert created is not None and path.stat().st_mode & 0o777 == 0o600
    assert ensure_key_file(path) is None
    assert read_ring(path).kids() == [created.kid]


async def test_the_service_refuses_to_start_without_a_credential_key(settings: Settings, tmp_path: Path) -> None:
    missing = settings.with_overrides(credential_keys_file=tmp_path / "nothing.keys")
    with pytest.raises(ConfigError, match="no credential key file"):
        async with running(USER, missing):
            pass
    empty = tmp_path / "empty.keys"
    empty.write_text("# no keys yet\n")
    with pytest.raises(ConfigError, match="holds no key"):
        async with running(USER, settings.with_overrides(credential_keys_file=empty)):
            pass
    malformed = tmp_path / "bad.keys"
    malformed.write_text("k1 !!!\n")
    with pytest.raises(ConfigError, match="line 1"):
        async with running(USER, settings.with_overrides(credential_keys_file=malformed)):
            pass
    await app.prepare_local(settings.with_overrides(credential_keys_file=empty))
    assert len(read_ring(empty).kids()) == 1


def test_the_ring_reloads_when_the_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "c.keys"
    first = add_key(path)
    keys = CredentialKeys(path)
    assert keys.for_encrypt().kid == first.kid
    second = add_key(path)
    assert keys.for_encrypt().kid == second.kid  # checked before every encryption
    third = add_key(path)
    assert keys.for_decrypt(third.kid).kid == third.kid  # an unknown key id triggers a reload
    assert keys.for_decrypt(first.kid).kid == first.kid


async def test_a_ciphertext_moved_to_another_row_fails_to_decrypt(
    stub: UserServiceAsyncStub, sign_up: SignUp, tokens: Tokens, settings: Settings
) -> None:
    owner, stranger = await sign_up(), await sign_up()
    source = await stub.CreateConnection(new_connection({"api_key": SECRET}), metadata=owner.metadata)
    same_user = await stub.CreateConnection(new_connection({"api_key": "x"}), metadata=owner.metadata)
    other_user = await stub.CreateConnection(new_connection({"api_key": "y"}), metadata=stranger.metadata)
    with db(settings) as conn:
        for target in [same_user.id, other_user.id]:
            conn.execute(
                "UPDATE users.user_connection t SET encrypted_credentials = s.encrypted_credentials, key_id = s.key_id"
                " FROM users.user_connection s WHERE s.id = %s AND t.id = %s",
                [source.id, target],
            )
    for target in [same_user.id, other_user.id]:
        failure = await rpc_error(reveal(stub, tokens, target))
        assert (failure.code, failure.reason) == (grpc.StatusCode.DATA_LOSS, "CREDENTIALS_UNREADABLE")
        assert SECRET not in failure.message
    assert (await reveal(stub, tokens, source.id)).credentials.fields["api_key"].string_value == SECRET


async def test_a_flipped_bit_in_the_stored_ciphertext_fails(
    stub: UserServiceAsyncStub, sign_up: SignUp, tokens: Tokens, settings: Settings
) -> None:
    owner = await sign_up()
    created = await stub.CreateConnection(new_connection(), metadata=owner.metadata)
    with db(settings) as conn:
        row = conn.execute(
            "SELECT encrypted_credentials FROM users.user_connection WHERE id = %s", [created.id]
        ).fetchone()
        assert row is not None
        tampered = bytearray(row[0])
        tampered[len(tampered) // 2] ^= 0x80
        conn.execute(
            "UPDATE users.user_connection SET encrypted_credentials = %s WHERE id = %s", [bytes(tampered), created.id]
        )
    failure = await rpc_error(reveal(stub, tokens, created.id))
    assert (failure.code, failure.reason) == (grpc.StatusCode.DATA_LOSS, "CREDENTIALS_UNREADABLE")
