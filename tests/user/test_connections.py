"""Connections: credentials encrypted at rest, never returned except by an audited, scoped reveal."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from typing import TYPE_CHECKING

import grpc
import pytest
from google.protobuf import field_mask_pb2, struct_pb2

from nexus.kit.config import Settings
from nexus.kit.validation import JSON, dict_to_struct, struct_to_dict
from nexus.user.v1 import user_pb2
from tests.support import Tokens, rpc_error
from tests.user.conftest import Account, SignUp, db

if TYPE_CHECKING:
    from nexus.user.v1.user_pb2_grpc import UserServiceAsyncStub

SECRET = "sk-live-THIS-IS-THE-SECRET-4f9a"
REVEAL = "user.connections.reveal"


def new_connection(
    credentials: dict[str, JSON] | None = None,
    *,
    agent_id: str = "agent_creator_v1",
    provider: str = "notion_oauth",
    display_name: str = "Shawn's Notion",
    request_id: str = "",
) -> user_pb2.CreateConnectionRequest:
    return user_pb2.CreateConnectionRequest(
        connection=user_pb2.Connection(agent_id=agent_id, provider=provider, display_name=display_name),
        credentials=dict_to_struct(credentials or {"api_key": SECRET}),
        request_id=request_id,
    )


async def reveal(
    stub: UserServiceAsyncStub, tokens: Tokens, connection_id: str, purpose: str = ""
) -> user_pb2.RevealConnectionCredentialsResponse:
    request = user_pb2.RevealConnectionCredentialsRequest(connection_id=connection_id, purpose=purpose)
    return await stub.RevealConnectionCredentials(request, metadata=tokens.service(REVEAL, name="worker-7"))


async def test_get_and_list_return_a_fingerprint_never_the_secret(stub: UserServiceAsyncStub, sign_up: SignUp) -> None:
    account = await sign_up()
    md = account.metadata
    created = await stub.CreateConnection(new_connection(), metadata=md)
    assert created.status == user_pb2.CONNECTION_STATUS_ACTIVE
    assert created.user_id == account.user_id and created.agent_id == "agent_creator_v1"
    assert created.credentials_fingerprint.startswith("hmac-sha256:")
    assert not created.HasField("last_verify_time")
    same = await stub.CreateConnection(new_connection(display_name="Twin"), metadata=md)
    other = await stub.CreateConnection(new_connection({"api_key": "another"}), metadata=md)
    # Equal credentials have equal fingerprints; the fingerprint does not contain the secret.
    assert same.credentials_fingerprint == created.credentials_fingerprint != other.credentials_fingerprint
    fetched = await stub.GetConnection(user_pb2.GetConnectionRequest(connection_id=created.id), metadata=md)
    listed = await stub.ListConnections(user_pb2.ListConnectionsRequest(), metadata=md)
    assert fetched == created
    assert [c.id for c in listed.connections] == [created.id, same.id, other.id]
    for message in [created, fetched, listed]:
        assert SECRET.encode() not in message.SerializeToString()


async def test_create_with_a_request_id_is_idempotent(stub: UserServiceAsyncStub, sign_up: SignUp) -> None:
    account = await sign_up()
    request_id = str(uuid.uuid4())
    first = await stub.CreateConnection(new_connection(request_id=request_id), metadata=account.metadata)
    again = await stub.CreateConnection(new_connection(request_id=request_id), metadata=account.metadata)
    assert again == first
    racing = str(uuid.uuid4())
    results = await asyncio.gather(
        *[stub.CreateConnection(new_connection(request_id=racing), metadata=account.metadata) for _ in range(4)]
    )
    assert len({r.id for r in results}) == 1
    listed = await stub.ListConnections(user_pb2.ListConnectionsRequest(), metadata=account.metadata)
    assert len(listed.connections) == 2


async def test_a_request_id_used_again_for_another_connection_is_refused_and_stores_no_plain_digest(
    stub: UserServiceAsyncStub, sign_up: SignUp, settings: Settings
) -> None:
    account = await sign_up()
    request = new_connection(request_id=str(uuid.uuid4()))
    first = await stub.CreateConnection(request, metadata=account.metadata)
    for different in (
        new_connection(request_id=request.request_id, display_name="Another Notion"),
        new_connection({"api_key": "another secret"}, request_id=request.request_id),
    ):
        failure = await rpc_error(stub.CreateConnection(different, metadata=account.metadata))
        assert (failure.code, failure.reason, failure.fields) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "REQUEST_ID_REUSED",
            {"request_id"},
        )
        assert "another" not in failure.message.lower()
    listed = await stub.ListConnections(user_pb2.ListConnectionsRequest(), metadata=account.metadata)
    assert [c.id for c in listed.connections] == [first.id]
    # The request carries credentials: what is kept of it is keyed, so no guess can be checked.
    with db(settings) as conn:
        row = conn.execute("SELECT request_hash FROM users.request_log WHERE request_id = %s", [request.request_id])
        stored = row.fetchone()
    assert stored is not None
    assert stored[0] != hashlib.sha256(request.SerializeToString(deterministic=True)).hexdigest()


async def test_update_display_name_status_and_credentials(
    stub: UserServiceAsyncStub, sign_up: SignUp, tokens: Tokens
) -> None:
    account = await sign_up()
    md = account.metadata
    created = await stub.CreateConnection(new_connection(), metadata=md)

    async def update(connection: user_pb2.Connection, *paths: str, **kw: struct_pb2.Struct) -> user_pb2.Connection:
        mask = field_mask_pb2.FieldMask(paths=list(paths))
        request = user_pb2.UpdateConnectionRequest(connection=connection, update_mask=mask, **kw)
        return await stub.UpdateConnection(request, metadata=md)

    renamed = await update(user_pb2.Connection(id=created.id, display_name="Work Notion"), "display_name")
    assert renamed.display_name == "Work Notion" and renamed.provider == created.provider
    expired = await update(
        user_pb2.Connection(id=created.id, status=user_pb2.CONNECTION_STATUS_EXPIRED, etag=renamed.etag), "status"
    )
    assert expired.status == user_pb2.CONNECTION_STATUS_EXPIRED
    failure = await rpc_error(update(user_pb2.Connection(id=created.id, display_name="x", etag=renamed.etag)))
    assert (failure.code, failure.reason) == (grpc.StatusCode.ABORTED, "ETAG_MISMATCH")
    failure = await rpc_error(update(user_pb2.Connection(id=created.id, status=99), "status"))  # type: ignore[arg-type]
    assert failure.fields == {"connection.status"}
    failure = await rpc_error(update(user_pb2.Connection(id=created.id), "status"))
    assert failure.fields == {"connection.status"}
    failure = await rpc_error(update(user_pb2.Connection(id=created.id, provider="github"), "provider"))
    assert failure.fields == {"update_mask"}
    # New credentials (an OAuth refresh, say): new ciphertext, new fingerprint.
    rotated = await update(
        user_pb2.Connection(id=created.id), "credentials", credentials=dict_to_struct({"api_key": "sk-new"})
    )
    assert rotated.credentials_fingerprint != created.credentials_fingerprint
    assert struct_to_dict((await reveal(stub, tokens, created.id)).credentials) == {"api_key": "sk-new"}


async def test_verify_records_the_time_for_the_owner_or_a_scoped_service(
    stub: UserServiceAsyncStub, sign_up: SignUp, tokens: Tokens
) -> None:
    account = await sign_up()
    created = await stub.CreateConnection(new_connection(), metadata=account.metadata)
    request = user_pb2.VerifyConnectionRequest(connection_id=created.id)
    verified = await stub.VerifyConnection(request, metadata=account.metadata)
    assert verified.HasField("last_verify_time")
    by_worker = await stub.VerifyConnection(request, metadata=tokens.service("user.connections.verify"))
    assert by_worker.last_verify_time.ToDatetime() >= verified.last_verify_time.ToDatetime()
    failure = await rpc_error(stub.VerifyConnection(request, metadata=tokens.service("runtime.worker")))
    assert (failure.code, failure.reason) == (grpc.StatusCode.PERMISSION_DENIED, "MISSING_SCOPE")
    revoke = user_pb2.UpdateConnectionRequest(
        connection=user_pb2.Connection(id=created.id, status=user_pb2.CONNECTION_STATUS_REVOKED)
    )
    await stub.UpdateConnection(revoke, metadata=account.metadata)
    failure = await rpc_error(stub.VerifyConnection(request, metadata=account.metadata))
    assert (failure.code, failure.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "CONNECTION_REVOKED")


async def test_delete(stub: UserServiceAsyncStub, sign_up: SignUp) -> None:
    account = await sign_up()
    md = account.metadata
    created = await stub.CreateConnection(new_connection(), metadata=md)
    stale = user_pb2.DeleteConnectionRequest(connection_id=created.id, etag="v999")
    assert (await rpc_error(stub.DeleteConnection(stale, metadata=md))).code == grpc.StatusCode.ABORTED
    await stub.DeleteConnection(user_pb2.DeleteConnectionRequest(connection_id=created.id), metadata=md)
    failure = await rpc_error(stub.GetConnection(user_pb2.GetConnectionRequest(connection_id=created.id), metadata=md))
    assert (failure.code, failure.reason) == (grpc.StatusCode.NOT_FOUND, "CONNECTION_NOT_FOUND")
    again = user_pb2.DeleteConnectionRequest(connection_id=created.id)
    failure = await rpc_error(stub.DeleteConnection(again, metadata=md))
    assert (failure.code, failure.reason) == (grpc.StatusCode.NOT_FOUND, "CONNECTION_NOT_FOUND")


async def test_reveal_needs_the_reveal_scope_and_every_reveal_is_audited(
    stub: UserServiceAsyncStub, sign_up: SignUp, bob: Account, tokens: Tokens
) -> None:
    account = await sign_up()
    created = await stub.CreateConnection(new_connection({"token": SECRET, "n": 3}), metadata=account.metadata)
    request = user_pb2.RevealConnectionCredentialsRequest(connection_id=created.id, purpose="task 42")
    for metadata in [account.metadata, tokens.service("user.admin"), tokens.service("user.connections.verify")]:
        failure = await rpc_error(stub.RevealConnectionCredentials(request, metadata=metadata))
        assert failure.code == grpc.StatusCode.PERMISSION_DENIED
    revealed = await reveal(stub, tokens, created.id, purpose="task 42")
    assert struct_to_dict(revealed.credentials) == {"token": SECRET, "n": 3}
    assert revealed.connection.id == created.id
    # The owner sees who read their credentials; another user sees nothing of it.
    audit = await stub.ListCredentialReveals(user_pb2.ListCredentialRevealsRequest(), metadata=account.metadata)
    assert [(r.connection_id, r.user_id, r.actor, r.purpose) for r in audit.reveals] == [
        (created.id, account.user_id, "service:worker-7", "task 42")
    ]
    assert audit.reveals[0].token_id and audit.reveals[0].HasField("reveal_time")
    theirs = user_pb2.ListCredentialRevealsRequest(connection_id=created.id)
    assert not (await stub.ListCredentialReveals(theirs, metadata=bob.metadata)).reveals
    # Operators read the whole log with a `user.audit.read` service token.
    operator = tokens.service("user.audit.read", name="ops")
    logged = await stub.ListCredentialReveals(theirs, metadata=operator)
    assert [r.id for r in logged.reveals] == [r.id for r in audit.reveals]
    by_user = user_pb2.ListCredentialRevealsRequest(user_id=account.user_id)
    assert len((await stub.ListCredentialReveals(by_user, metadata=operator)).reveals) == 1
    failure = await rpc_error(stub.ListCredentialReveals(theirs, metadata=tokens.service(REVEAL)))
    assert failure.code == grpc.StatusCode.PERMISSION_DENIED
    # The log pages newest first.
    for purpose in ["task 43", "task 44"]:
        await reveal(stub, tokens, created.id, purpose=purpose)
    first = await stub.ListCredentialReveals(
        user_pb2.ListCredentialRevealsRequest(page_size=2), metadata=account.metadata
    )
    rest = await stub.ListCredentialReveals(
        user_pb2.ListCredentialRevealsRequest(page_size=2, page_token=first.next_page_token), metadata=account.metadata
    )
    assert [r.purpose for r in [*first.reveals, *rest.reveals]] == ["task 44", "task 43", "task 42"]
    assert rest.next_page_token == ""


async def test_revoked_connections_are_not_revealed(
    stub: UserServiceAsyncStub, sign_up: SignUp, tokens: Tokens
) -> None:
    account = await sign_up()
    created = await stub.CreateConnection(new_connection(), metadata=account.metadata)
    revoke = user_pb2.UpdateConnectionRequest(
        connection=user_pb2.Connection(id=created.id, status=user_pb2.CONNECTION_STATUS_REVOKED)
    )
    await stub.UpdateConnection(revoke, metadata=account.metadata)
    failure = await rpc_error(reveal(stub, tokens, created.id))
    assert (failure.code, failure.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "CONNECTION_REVOKED")
    failure = await rpc_error(reveal(stub, tokens, str(uuid.uuid4())))
    assert failure.code == grpc.StatusCode.NOT_FOUND


async def test_list_pages_and_filters_by_agent(stub: UserServiceAsyncStub, sign_up: SignUp) -> None:
    account = await sign_up()
    md = account.metadata
    ids = []
    for i in range(5):
        agent = "agent_a" if i % 2 == 0 else "agent_b"
        ids.append((await stub.CreateConnection(new_connection(agent_id=agent), metadata=md)).id)
    seen: list[str] = []
    token = ""
    while True:
        page = await stub.ListConnections(user_pb2.ListConnectionsRequest(page_size=2, page_token=token), metadata=md)
        seen += [c.id for c in page.connections]
        token = page.next_page_token
        if not token:
            break
    assert seen == ids
    only_a = await stub.ListConnections(user_pb2.ListConnectionsRequest(agent_id="agent_a", page_size=2), metadata=md)
    assert [c.id for c in only_a.connections] == [ids[0], ids[2]]
    # A page token belongs to its query: replaying it with another filter is refused.
    failure = await rpc_error(
        stub.ListConnections(
            user_pb2.ListConnectionsRequest(agent_id="agent_b", page_token=only_a.next_page_token), metadata=md
        )
    )
    assert (failure.code, failure.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PAGE_TOKEN")


async def test_no_plaintext_in_the_table_the_logs_or_any_response(
    stub: UserServiceAsyncStub,
    sign_up: SignUp,
    tokens: Tokens,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    account = await sign_up()
    md = account.metadata
    responses: list[bytes] = []
    with caplog.at_level(logging.DEBUG):
        created = await stub.CreateConnection(new_connection({"api_key": SECRET}), metadata=md)
        responses.append(created.SerializeToString())
        get = user_pb2.GetConnectionRequest(connection_id=created.id)
        responses.append((await stub.GetConnection(get, metadata=md)).SerializeToString())
        responses.append(
            (await stub.ListConnections(user_pb2.ListConnectionsRequest(), metadata=md)).SerializeToString()
        )
        update = user_pb2.UpdateConnectionRequest(connection=user_pb2.Connection(id=created.id, display_name="n"))
        responses.append((await stub.UpdateConnection(update, metadata=md)).SerializeToString())
        verify = user_pb2.VerifyConnectionRequest(connection_id=created.id)
        responses.append((await stub.VerifyConnection(verify, metadata=md)).SerializeToString())
        revealed = await reveal(stub, tokens, created.id)
        responses.append(revealed.connection.SerializeToString())
        # Errors must not echo the secret either.
        bad = new_connection({"api_key": SECRET + "\x00"})
        failure = await rpc_error(stub.CreateConnection(bad, metadata=md))
    assert failure.code == grpc.StatusCode.INVALID_ARGUMENT and SECRET not in failure.message
    assert struct_to_dict(revealed.credentials) == {"api_key": SECRET}
    assert caplog.records, "the server logged nothing: the capture is not working"
    assert SECRET not in caplog.text
    assert all(SECRET.encode() not in r for r in responses)
    with db(settings) as conn:
        for table in ["user_connection", "credential_reveal"]:
            dump = conn.execute(f"SELECT coalesce(string_agg(t::text, ' '), '') FROM users.{table} t").fetchone()
            assert dump is not None and SECRET not in dump[0] and SECRET.encode().hex() not in dump[0]
        row = conn.execute(
            "SELECT key_id, length(encrypted_credentials) FROM users.user_connection WHERE id = %s", [created.id]
        ).fetchone()
    assert row is not None and row[0] and row[1] >= 12 + 16 + len(SECRET)


async def test_a_connection_to_an_agent_that_does_not_exist_is_invalid(
    stub: UserServiceAsyncStub, sign_up: SignUp
) -> None:
    account = await sign_up()
    failure = await rpc_error(
        stub.CreateConnection(new_connection(agent_id="no_such_agent"), metadata=account.metadata)
    )
    assert (failure.code, failure.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "AGENT_NOT_FOUND")
    assert failure.fields == {"connection.agent_id"}
    listed = await stub.ListConnections(user_pb2.ListConnectionsRequest(), metadata=account.metadata)
    assert list(listed.connections) == []
