"""Transport: each RPC learns who is calling (access), validates (convert), calls accounts or a
store, converts back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
from google.protobuf import empty_pb2

from nexus.kit import paging
from nexus.kit.auth import caller
from nexus.kit.ratelimit import ClientAddresses
from nexus.user.v1 import user_pb2, user_pb2_grpc
from services.user import convert
from services.user.accounts import Accounts
from services.user.agents import AgentDirectory
from services.user.domain import access
from services.user.domain.connections import check_revealable
from services.user.keys import CredentialKeys, SigningKeys
from services.user.revocations import RevocationFeed
from services.user.store.accounts import AccountStore
from services.user.store.connections import ConnectionStore
from services.user.store.profiles import ProfileStore
from services.user.store.reveals import RevealStore
from services.user.store.settings import SettingStore

Context = grpc.aio.ServicerContext[Any, Any]
EMPTY = empty_pb2.Empty()


class UserServicer(user_pb2_grpc.UserServiceServicer):
    def __init__(
        self,
        accounts: Accounts,
        users: AccountStore,
        profiles: ProfileStore,
        settings: SettingStore,
        connections: ConnectionStore,
        reveals: RevealStore,
        credential_keys: CredentialKeys,
        signing: SigningKeys,
        agents: AgentDirectory,
        clients: ClientAddresses,
        revocations: RevocationFeed,
        max_message_bytes: int,
    ) -> None:
        self._accounts = accounts
        self._users = users
        self._profiles = profiles
        self._settings = settings
        self._connections = connections
        self._reveals = reveals
        self._keys = credential_keys
        self._signing = signing
        self._agents = agents
        self._clients = clients
        self._revocations = revocations
        self._max_message_bytes = max_message_bytes

    def _budget(self) -> paging.Budget:
        return paging.Budget(self._max_message_bytes)

    # -- authentication ---------------------------------------------------------------------

    async def SignUp(self, request: user_pb2.SignUpRequest, context: Context) -> user_pb2.SignUpResponse:
        new = convert.sign_up(request)
        record, issued = await self._accounts.sign_up(new.email, new.password, new.nickname, self._clients.of(context))
        return user_pb2.SignUpResponse(user=convert.user(record), tokens=convert.tokens(issued))

    async def SignIn(self, request: user_pb2.SignInRequest, context: Context) -> user_pb2.AuthTokens:
        email, password = convert.sign_in(request)
        return convert.tokens(await self._accounts.sign_in(email, password, self._clients.of(context)))

    async def Refresh(self, request: user_pb2.RefreshRequest, context: Context) -> user_pb2.AuthTokens:
        return convert.tokens(await self._accounts.refresh(convert.refresh_token(request.refresh_token)))

    async def SignOut(self, request: user_pb2.SignOutRequest, context: Context) -> empty_pb2.Empty:
        await self._accounts.sign_out(convert.refresh_token(request.refresh_token))
        return EMPTY

    async def WatchRevocations(
        self, request: user_pb2.WatchRevocationsRequest, context: Context
    ) -> AsyncIterator[user_pb2.WatchRevocationsResponse]:
        cursor = convert.revocation_cursor(request.after_seq)
        async for batch in self._revocations.follow(cursor):
            cursor = batch[-1].seq if batch else cursor
            yield convert.revocations(batch, cursor)

    async def GetKeySet(self, request: user_pb2.GetKeySetRequest, context: Context) -> user_pb2.GetKeySetResponse:
        return convert.key_set(await self._signing.published())

    # -- accounts ---------------------------------------------------------------------------

    async def GetUser(self, request: user_pb2.GetUserRequest, context: Context) -> user_pb2.User:
        user_id = access.user_or_scoped_service(caller(), request.user_id, scope=access.SCOPE_ADMIN, kind="user")
        return convert.user(await self._users.get_user(user_id))

    async def DeactivateUser(self, request: user_pb2.DeactivateUserRequest, context: Context) -> user_pb2.User:
        user_id = access.user_or_scoped_service(caller(), request.user_id, scope=access.SCOPE_ADMIN, kind="user")
        return convert.user(await self._users.set_active(user_id, False))

    async def ReactivateUser(self, request: user_pb2.ReactivateUserRequest, context: Context) -> user_pb2.User:
        principal = caller()
        principal.require_scope(access.SCOPE_ADMIN)
        user_id = access.user_or_scoped_service(principal, request.user_id, scope=access.SCOPE_ADMIN, kind="user")
        return convert.user(await self._users.set_active(user_id, True))

    # -- profile ----------------------------------------------------------------------------

    async def GetProfile(self, request: user_pb2.GetProfileRequest, context: Context) -> user_pb2.Profile:
        user_id = access.user_or_scoped_service(
            caller(), request.user_id, scope=access.SCOPE_PROFILES_READ, kind="profile"
        )
        return convert.profile_to_proto(await self._profiles.get(user_id))

    async def UpdateProfile(self, request: user_pb2.UpdateProfileRequest, context: Context) -> user_pb2.Profile:
        user_id = access.own_user(caller(), request.profile.user_id, kind="profile", field="profile.user_id")
        etag, change = convert.profile_update(request)
        return convert.profile_to_proto(await self._profiles.update(user_id, etag, change))

    # -- settings ---------------------------------------------------------------------------

    async def GetSetting(self, request: user_pb2.GetSettingRequest, context: Context) -> user_pb2.Setting:
        user_id = access.own_user(caller(), request.user_id, kind="setting")
        return convert.setting_to_proto(await self._settings.get(user_id, convert.setting_key(request.key)))

    async def ListSettings(
        self, request: user_pb2.ListSettingsRequest, context: Context
    ) -> user_pb2.ListSettingsResponse:
        user_id = access.own_user(caller(), request.user_id, kind="setting")
        page = convert.settings_list(user_id).page(request, self._budget(), convert.setting_to_proto)
        await self._settings.page(user_id, page)
        return user_pb2.ListSettingsResponse(settings=page.messages, next_page_token=page.next_page_token)

    async def SetSetting(self, request: user_pb2.SetSettingRequest, context: Context) -> user_pb2.Setting:
        user_id = access.own_user(caller(), request.user_id, kind="setting")
        key, value, etag = convert.setting_write(request)
        return convert.setting_to_proto(await self._settings.set(user_id, key, value, etag))

    async def DeleteSetting(self, request: user_pb2.DeleteSettingRequest, context: Context) -> empty_pb2.Empty:
        user_id = access.own_user(caller(), request.user_id, kind="setting")
        key, etag = convert.setting_delete(request)
        await self._settings.delete(user_id, key, etag)
        return EMPTY

    # -- connections ------------------------------------------------------------------------

    async def CreateConnection(
        self, request: user_pb2.CreateConnectionRequest, context: Context
    ) -> user_pb2.Connection:
        user_id = caller().user_id
        new = convert.new_connection(request, user_id, self._keys.digest_keys())
        await self._agents.ensure_exists(new.agent_id)
        record = await self._connections.create(
            user_id,
            agent_id=new.agent_id,
            provider=new.provider,
            display_name=new.display_name,
            status=new.status,
            key=new.key,
            seal=self._keys.sealer(new.credentials),
        )
        return convert.connection_to_proto(record)

    async def GetConnection(self, request: user_pb2.GetConnectionRequest, context: Context) -> user_pb2.Connection:
        user_id = caller().user_id
        connection_id = convert.connection_id(request.connection_id)
        return convert.connection_to_proto(await self._connections.get(user_id, connection_id))

    async def ListConnections(
        self, request: user_pb2.ListConnectionsRequest, context: Context
    ) -> user_pb2.ListConnectionsResponse:
        user_id = caller().user_id
        agent_id, keyset = convert.connections_list(request, user_id)
        page = keyset.page(request, self._budget(), convert.connection_to_proto)
        await self._connections.page(user_id, agent_id, page)
        return user_pb2.ListConnectionsResponse(connections=page.messages, next_page_token=page.next_page_token)

    async def UpdateConnection(
        self, request: user_pb2.UpdateConnectionRequest, context: Context
    ) -> user_pb2.Connection:
        user_id = caller().user_id
        change = convert.connection_change(request)
        seal = self._keys.sealer(change.credentials) if change.credentials is not None else None
        record = await self._connections.update(
            user_id, change.connection_id, etag=change.etag, values=change.values, seal=seal
        )
        return convert.connection_to_proto(record)

    async def DeleteConnection(self, request: user_pb2.DeleteConnectionRequest, context: Context) -> empty_pb2.Empty:
        user_id = caller().user_id
        connection_id, etag = convert.connection_delete(request)
        await self._connections.delete(user_id, connection_id, etag)
        return EMPTY

    async def VerifyConnection(
        self, request: user_pb2.VerifyConnectionRequest, context: Context
    ) -> user_pb2.Connection:
        principal = caller()
        connection_id = convert.connection_id(request.connection_id)
        owner = access.verifying_owner(principal)
        return convert.connection_to_proto(await self._connections.mark_verified(connection_id, owner))

    async def RevealConnectionCredentials(
        self, request: user_pb2.RevealConnectionCredentialsRequest, context: Context
    ) -> user_pb2.RevealConnectionCredentialsResponse:
        principal = caller()
        principal.require_scope(access.SCOPE_CONNECTIONS_REVEAL)
        connection_id, purpose = convert.reveal_request(request)
        record, credentials = await self._connections.reveal(
            connection_id,
            actor=principal.subject,
            token_id=principal.token_id,
            purpose=purpose,
            check=check_revealable,
            open_=self._keys.open,
        )
        return convert.revealed(record, credentials)

    async def ListCredentialReveals(
        self, request: user_pb2.ListCredentialRevealsRequest, context: Context
    ) -> user_pb2.ListCredentialRevealsResponse:
        where, keyset = convert.reveals_list(request, caller())
        page = keyset.page(request, self._budget(), convert.reveal_to_proto)
        await self._reveals.page(where, page)
        return user_pb2.ListCredentialRevealsResponse(reveals=page.messages, next_page_token=page.next_page_token)
