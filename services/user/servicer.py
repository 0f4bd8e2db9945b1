"""Transport only: validate → call accounts/store → convert → return."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
from google.protobuf import empty_pb2

from nexus.kit import paging
from nexus.kit.auth import caller
from nexus.kit.errors import FailedPrecondition, NotFound
from nexus.kit.ratelimit import ClientAddresses
from nexus.kit.validation import JSON
from nexus.user.v1 import user_pb2, user_pb2_grpc
from services.user import convert
from services.user.accounts import Accounts
from services.user.agents import AgentDirectory
from services.user.domain import access, envelope
from services.user.domain.connections import revealable
from services.user.domain.envelope import RowBinding, Sealed
from services.user.domain.records import ConnectionRecord, IssuedTokens, StoredCredentials
from services.user.keys import CredentialKeys, SigningKeys
from services.user.revocations import RevocationFeed
from services.user.store import Sealer, UserStore

Context = grpc.aio.ServicerContext[Any, Any]


def _tokens(issued: IssuedTokens) -> user_pb2.AuthTokens:
    return convert.auth_tokens(issued.user_id, issued.access_token, issued.access_expires_at, issued.refresh)


class UserServicer(user_pb2_grpc.UserServiceServicer):
    def __init__(
        self,
        store: UserStore,
        accounts: Accounts,
        credential_keys: CredentialKeys,
        signing: SigningKeys,
        agents: AgentDirectory,
        clients: ClientAddresses,
        revocations: RevocationFeed,
        max_message_bytes: int,
    ) -> None:
        self.max_message_bytes = max_message_bytes
        self.store = store
        self.accounts = accounts
        self.keys = credential_keys
        self.signing = signing
        self.agents = agents
        self.clients = clients
        self.revocations = revocations

    # -- authentication ------------------------------------------------------------------------

    async def SignUp(self, request: user_pb2.SignUpRequest, context: Context) -> user_pb2.SignUpResponse:
        new = convert.sign_up(request)
        record, issued = await self.accounts.sign_up(new.email, new.password, new.nickname, self.clients.of(context))
        return user_pb2.SignUpResponse(user=convert.user(record), tokens=_tokens(issued))

    async def SignIn(self, request: user_pb2.SignInRequest, context: Context) -> user_pb2.AuthTokens:
        email, password = convert.sign_in(request)
        return _tokens(await self.accounts.sign_in(email, password, self.clients.of(context)))

    async def Refresh(self, request: user_pb2.RefreshRequest, context: Context) -> user_pb2.AuthTokens:
        return _tokens(await self.accounts.refresh(convert.refresh_token(request.refresh_token)))

    async def SignOut(self, request: user_pb2.SignOutRequest, context: Context) -> empty_pb2.Empty:
        await self.accounts.sign_out(convert.refresh_token(request.refresh_token))
        return empty_pb2.Empty()

    async def WatchRevocations(
        self, request: user_pb2.WatchRevocationsRequest, context: Context
    ) -> AsyncIterator[user_pb2.WatchRevocationsResponse]:
        cursor = convert.revocation_cursor(request.after_seq)
        async for batch in self.revocations.follow(cursor):
            cursor = batch[-1].seq if batch else cursor
            yield convert.revocations(batch, cursor)

    async def GetKeySet(self, request: user_pb2.GetKeySetRequest, context: Context) -> user_pb2.GetKeySetResponse:
        keys = await self.signing.published()
        return user_pb2.GetKeySetResponse(
            keys=[user_pb2.PublicKey(kid=kid, algorithm="EdDSA", public_key=raw) for kid, raw in keys.items()]
        )

    # -- accounts ------------------------------------------------------------------------------

    async def GetUser(self, request: user_pb2.GetUserRequest, context: Context) -> user_pb2.User:
        user_id = access.user_or_scoped_service(caller(), request.user_id, scope=access.SCOPE_ADMIN, kind="user")
        record = await self.store.get_user(user_id)
        if record is None:
            raise NotFound("user not found", reason="USER_NOT_FOUND")
        return convert.user(record)

    async def DeactivateUser(self, request: user_pb2.DeactivateUserRequest, context: Context) -> user_pb2.User:
        user_id = access.user_or_scoped_service(caller(), request.user_id, scope=access.SCOPE_ADMIN, kind="user")
        return await self._set_active(user_id, active=False)

    async def ReactivateUser(self, request: user_pb2.ReactivateUserRequest, context: Context) -> user_pb2.User:
        principal = caller()
        principal.require_scope(access.SCOPE_ADMIN)
        user_id = access.user_or_scoped_service(principal, request.user_id, scope=access.SCOPE_ADMIN, kind="user")
        return await self._set_active(user_id, active=True)

    async def _set_active(self, user_id: str, *, active: bool) -> user_pb2.User:
        record = await self.store.set_active(user_id, active)
        if record is None:
            raise NotFound("user not found", reason="USER_NOT_FOUND")
        return convert.user(record)

    # -- profile -------------------------------------------------------------------------------

    async def GetProfile(self, request: user_pb2.GetProfileRequest, context: Context) -> user_pb2.Profile:
        user_id = access.user_or_scoped_service(
            caller(), request.user_id, scope=access.SCOPE_PROFILES_READ, kind="profile"
        )
        record = await self.store.get_profile(user_id)
        if record is None:
            raise NotFound("profile not found", reason="PROFILE_NOT_FOUND")
        return convert.profile_to_proto(record)

    async def UpdateProfile(self, request: user_pb2.UpdateProfileRequest, context: Context) -> user_pb2.Profile:
        user_id = access.own_user(caller(), request.profile.user_id, kind="profile", field="profile.user_id")
        etag, change = convert.profile_update(request)
        record = await self.store.update_profile(user_id, etag, change)
        if record is None:
            raise NotFound("profile not found", reason="PROFILE_NOT_FOUND")
        return convert.profile_to_proto(record)

    # -- settings ------------------------------------------------------------------------------

    async def GetSetting(self, request: user_pb2.GetSettingRequest, context: Context) -> user_pb2.Setting:
        user_id = access.own_user(caller(), request.user_id, kind="setting")
        record = await self.store.get_setting(user_id, convert.setting_key(request.key))
        if record is None:
            raise NotFound("setting not found", reason="SETTING_NOT_FOUND")
        return convert.setting_to_proto(record)

    async def ListSettings(
        self, request: user_pb2.ListSettingsRequest, context: Context
    ) -> user_pb2.ListSettingsResponse:
        user_id = access.own_user(caller(), request.user_id, kind="setting")
        fingerprint = paging.query_fingerprint("settings", user_id)
        size, cursor = convert.page(request.page_size, request.page_token, fingerprint)
        records = await self.store.list_settings(user_id, convert.key_cursor(cursor), size + 1)
        settings, token = paging.page_of(
            records,
            size,
            convert.setting_to_proto,
            self._budget(),
            token_of=lambda r: paging.encode([r.key], fingerprint),
        )
        return user_pb2.ListSettingsResponse(settings=settings, next_page_token=token)

    async def SetSetting(self, request: user_pb2.SetSettingRequest, context: Context) -> user_pb2.Setting:
        user_id = access.own_user(caller(), request.user_id, kind="setting")
        key, value, etag = convert.setting_write(request)
        return convert.setting_to_proto(await self.store.set_setting(user_id, key, value, etag))

    async def DeleteSetting(self, request: user_pb2.DeleteSettingRequest, context: Context) -> empty_pb2.Empty:
        user_id = access.own_user(caller(), request.user_id, kind="setting")
        key, etag = convert.setting_key(request.key), convert.etag(request.etag)
        if not await self.store.delete_setting(user_id, key, etag):
            raise NotFound("setting not found", reason="SETTING_NOT_FOUND")
        return empty_pb2.Empty()

    # -- connections ---------------------------------------------------------------------------

    def _sealer(self, credentials: dict[str, JSON]) -> Sealer:
        def seal(binding: RowBinding) -> Sealed:
            return envelope.seal(self.keys.for_encrypt(), binding, credentials)

        return seal

    async def CreateConnection(
        self, request: user_pb2.CreateConnectionRequest, context: Context
    ) -> user_pb2.Connection:
        user_id = caller().user_id
        new = convert.new_connection(request)
        await self.agents.ensure_exists(new.agent_id)
        record = await self.store.create_connection(
            user_id,
            agent_id=new.agent_id,
            provider=new.provider,
            display_name=new.display_name,
            status=new.status,
            request_id=new.request_id,
            seal=self._sealer(new.credentials),
        )
        return convert.connection_to_proto(record)

    async def GetConnection(self, request: user_pb2.GetConnectionRequest, context: Context) -> user_pb2.Connection:
        user_id = caller().user_id
        record = await self.store.get_connection(user_id, convert.connection_id(request.connection_id))
        return convert.connection_to_proto(record)

    async def ListConnections(
        self, request: user_pb2.ListConnectionsRequest, context: Context
    ) -> user_pb2.ListConnectionsResponse:
        user_id = caller().user_id
        agent_id = convert.optional_agent_filter(request.agent_id)
        fingerprint = paging.query_fingerprint("connections", user_id, agent_id)
        size, cursor = convert.page(request.page_size, request.page_token, fingerprint)
        after = convert.time_id_cursor(cursor)
        records = await self.store.list_connections(user_id, agent_id, after, size + 1)
        connections, token = paging.page_of(
            records,
            size,
            convert.connection_to_proto,
            self._budget(),
            token_of=lambda r: paging.encode([r.created_at.isoformat(), r.id], fingerprint),
        )
        return user_pb2.ListConnectionsResponse(connections=connections, next_page_token=token)

    async def UpdateConnection(
        self, request: user_pb2.UpdateConnectionRequest, context: Context
    ) -> user_pb2.Connection:
        user_id = caller().user_id
        change = convert.connection_change(request)
        seal = self._sealer(change.credentials) if change.credentials is not None else None
        record = await self.store.update_connection(
            user_id, change.connection_id, etag=change.etag, values=change.values, seal=seal
        )
        return convert.connection_to_proto(record)

    async def DeleteConnection(self, request: user_pb2.DeleteConnectionRequest, context: Context) -> empty_pb2.Empty:
        user_id = caller().user_id
        ident, etag = convert.connection_id(request.connection_id), convert.etag(request.etag)
        await self.store.delete_connection(user_id, ident, etag)
        return empty_pb2.Empty()

    async def VerifyConnection(
        self, request: user_pb2.VerifyConnectionRequest, context: Context
    ) -> user_pb2.Connection:
        principal = caller()
        ident = convert.connection_id(request.connection_id)
        if principal.is_user:
            owner: str | None = principal.user_id
        else:
            principal.require_user_or_scope(access.SCOPE_CONNECTIONS_VERIFY)
            owner = None
        return convert.connection_to_proto(await self.store.mark_verified(ident, owner))

    async def RevealConnectionCredentials(
        self, request: user_pb2.RevealConnectionCredentialsRequest, context: Context
    ) -> user_pb2.RevealConnectionCredentialsResponse:
        principal = caller()
        principal.require_scope(access.SCOPE_CONNECTIONS_REVEAL)
        ident, purpose = convert.reveal_request(request)
        record, credentials = await self.store.reveal(
            ident,
            actor=principal.subject,
            token_id=principal.token_id,
            purpose=purpose,
            check=_check_revealable,
            open_=self._open,
        )
        return user_pb2.RevealConnectionCredentialsResponse(
            connection=convert.connection_to_proto(record), credentials=convert.credentials_to_proto(credentials)
        )

    def _open(self, stored: StoredCredentials) -> dict[str, JSON]:
        binding = RowBinding(connection_id=stored.connection_id, user_id=stored.user_id, provider=stored.provider)
        return envelope.open_sealed(self.keys.for_decrypt(stored.key_id), binding, stored.blob)

    async def ListCredentialReveals(
        self, request: user_pb2.ListCredentialRevealsRequest, context: Context
    ) -> user_pb2.ListCredentialRevealsResponse:
        principal = caller()
        connection_id, named_user = convert.reveal_filters(request)
        if principal.is_user:
            owner: str | None = access.own_user(principal, request.user_id, kind="user")
        else:
            principal.require_user_or_scope(access.SCOPE_AUDIT_READ)
            owner = named_user
        fingerprint = paging.query_fingerprint("reveals", principal.subject, owner, connection_id)
        size, cursor = convert.page(request.page_size, request.page_token, fingerprint)
        records = await self.store.list_reveals(
            user_id=owner, connection_id=connection_id, before_id=convert.int_cursor(cursor), limit=size + 1
        )
        reveals, token = paging.page_of(
            records,
            size,
            convert.reveal_to_proto,
            self._budget(),
            token_of=lambda r: paging.encode([r.id], fingerprint),
        )
        return user_pb2.ListCredentialRevealsResponse(reveals=reveals, next_page_token=token)

    def _budget(self) -> paging.Budget:
        return paging.Budget(self.max_message_bytes)


def _check_revealable(record: ConnectionRecord) -> None:
    if not revealable(record.status):
        raise FailedPrecondition("the connection is revoked", reason="CONNECTION_REVOKED")
