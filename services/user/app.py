"""The User service (`nexus.user.v1`, schema `users`): accounts, tokens, profiles, settings and
encrypted connection credentials."""

from __future__ import annotations

import grpc

from nexus.kit.config import Settings
from nexus.kit.idempotency import RequestLog
from nexus.kit.ratelimit import ClientAddresses
from nexus.kit.server import Resources, ServiceDefinition
from nexus.user.v1 import user_pb2, user_pb2_grpc
from services.user import keys
from services.user.accounts import Accounts
from services.user.agents import AgentDirectory
from services.user.hashing import PasswordHasher
from services.user.revocations import RevocationFeed
from services.user.servicer import UserServicer
from services.user.store.accounts import AccountStore
from services.user.store.connections import ConnectionStore
from services.user.store.profiles import ProfileStore
from services.user.store.reveals import RevealStore
from services.user.store.revocations import RevocationStore
from services.user.store.settings import SettingStore
from services.user.store.tables import request_log

SERVICE = user_pb2.DESCRIPTOR.services_by_name["UserService"].full_name
DOMAIN = "nexus.user.v1"
PUBLIC_METHODS = tuple(
    f"/{SERVICE}/{name}" for name in ("SignUp", "SignIn", "Refresh", "SignOut", "GetKeySet", "WatchRevocations")
)


async def prepare_local(settings: Settings) -> None:
    """`nexus up` on one machine: create the credential key file (mode 0600) on first run."""
    keys.ensure_key_file(settings.resolved_credential_keys_file)


async def build(resources: Resources) -> ServiceDefinition:
    settings = resources.settings
    # Both raise ConfigError, so a service without its keys refuses to start.
    credential_keys = keys.CredentialKeys(settings.resolved_credential_keys_file)
    signing = keys.SigningKeys(settings)
    db = resources.database("user")
    users = AccountStore(db, access_token_ttl_s=settings.access_token_ttl_s)
    revocations = RevocationFeed(RevocationStore(db), settings.revocation_poll_s)
    users.on_revoked = revocations.wake
    requests = RequestLog(db, request_log, ttl_s=settings.request_id_ttl_s)
    pruning = requests.pruner()
    hasher = PasswordHasher()
    servicer = UserServicer(
        Accounts(users, hasher, signing, settings),
        users,
        ProfileStore(db),
        SettingStore(db),
        ConnectionStore(db, requests),
        RevealStore(db),
        credential_keys,
        signing,
        AgentDirectory(resources),
        ClientAddresses(settings.trusted_relays),
        revocations,
        settings.max_message_bytes,
    )

    def register(server: grpc.aio.Server) -> None:
        user_pb2_grpc.add_UserServiceServicer_to_server(servicer, server)

    async def stop() -> None:
        await pruning.stop()
        await revocations.stop()
        hasher.close()

    return ServiceDefinition(
        name="user",
        domain=DOMAIN,
        register=register,
        service_names=[SERVICE],
        public_methods=PUBLIC_METHODS,
        # The dummy hash for unknown emails is made before the first sign-in, not during it.
        on_start=[hasher.warm_up, revocations.start, pruning.start],
        on_stop=[stop],
    )
