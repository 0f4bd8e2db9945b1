"""Proto ↔ domain values, and request validation (every bad field reported at once)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from nexus.kit import idempotency
from nexus.kit.errors import invalid
from nexus.kit.idempotency import RequestKey
from nexus.kit.paging import Keyset
from nexus.kit.protos import timestamp
from nexus.kit.tokens import Principal
from nexus.kit.validation import JSON, Violations, dict_to_struct, json_to_value, required_uuid, update_paths
from nexus.user.v1 import user_pb2
from services.user.domain import access, passwords, profile, signins
from services.user.domain import connections as conn_rules
from services.user.domain import settings as setting_rules
from services.user.domain.emails import Email, EmailError, default_nickname, normalise_email
from services.user.domain.records import (
    ConnectionRecord,
    IssuedTokens,
    ProfileRecord,
    RevealRecord,
    RevocationRecord,
    SettingRecord,
    UserRecord,
)
from services.user.store.connections import ConnectionCursor
from services.user.store.reveals import RevealCursor, RevealFilter
from services.user.store.settings import SettingCursor

# Longer input cannot be an address (254 at most once trimmed); refused before normalising.
_MAX_EMAIL_INPUT = 320

STATUS_TO_PROTO = {
    "active": user_pb2.CONNECTION_STATUS_ACTIVE,
    "expired": user_pb2.CONNECTION_STATUS_EXPIRED,
    "revoked": user_pb2.CONNECTION_STATUS_REVOKED,
}
STATUS_FROM_PROTO: dict[int, str] = {number: name for name, number in STATUS_TO_PROTO.items()}

PROFILE_FIELDS = ("nickname", "avatar_url", "preferences", "principles")
CONNECTION_FIELDS = ("display_name", "status", "credentials")


# -- authentication ------------------------------------------------------------------------------


def _email(v: Violations, field: str, raw: str) -> Email | None:
    v.text(field, raw, max_len=_MAX_EMAIL_INPUT, required=True)
    if _last_is(v, field):
        return None
    try:
        return normalise_email(raw)
    except EmailError as err:
        v.add(field, str(err))
        return None


def _last_is(v: Violations, field: str) -> bool:
    return bool(v.items) and v.items[-1].field == field


@dataclass(frozen=True)
class SignUp:
    email: Email
    password: str
    nickname: str


def sign_up(request: user_pb2.SignUpRequest) -> SignUp:
    v = Violations()
    email = _email(v, "email", request.email)
    v.text("password", request.password, max_len=passwords.MAX_LENGTH, required=True)
    if not _last_is(v, "password"):
        problem = passwords.password_problem(request.password, email_key=email.key if email else "")
        if problem:
            v.add("password", problem)
    nickname = ""
    if request.nickname:
        nickname = profile.check_nickname(v, "nickname", request.nickname)
    v.raise_if_any()
    assert email is not None
    return SignUp(email=email, password=request.password, nickname=nickname or default_nickname(email))


def sign_in(request: user_pb2.SignInRequest) -> tuple[Email, str]:
    v = Violations()
    email = _email(v, "email", request.email)
    v.text("password", request.password, max_len=passwords.MAX_LENGTH, required=True)
    v.raise_if_any()
    assert email is not None
    return email, request.password


def refresh_token(value: str) -> str:
    v = Violations()
    v.text("refresh_token", value, max_len=signins.MAX_TOKEN_LEN, required=True)
    v.raise_if_any()
    if not signins.FORMAT.fullmatch(value):
        # Shaped wrong: no such token can exist, so it is refused like an unknown one.
        raise signins.invalid_refresh_token()
    return value


def revocation_cursor(after_seq: int) -> int:
    if after_seq < 0:
        raise invalid("after_seq", "must be 0 or a cursor from an earlier response")
    return after_seq


def revocations(batch: list[RevocationRecord], cursor: int) -> user_pb2.WatchRevocationsResponse:
    return user_pb2.WatchRevocationsResponse(
        revocations=[
            user_pb2.Revocation(seq=r.seq, session_digest=r.session_digest, expire_time=timestamp(r.expires_at))
            for r in batch
        ],
        cursor=cursor,
    )


def tokens(issued: IssuedTokens) -> user_pb2.AuthTokens:
    return user_pb2.AuthTokens(
        user_id=issued.user_id,
        access_token=issued.access_token,
        access_token_expire_time=timestamp(issued.access_expires_at),
        refresh_token=issued.refresh.token,
        refresh_token_expire_time=timestamp(issued.refresh.expires_at),
        token_type="Bearer",
    )


def key_set(keys: dict[str, bytes]) -> user_pb2.GetKeySetResponse:
    return user_pb2.GetKeySetResponse(
        keys=[user_pb2.PublicKey(kid=kid, algorithm="EdDSA", public_key=raw) for kid, raw in keys.items()]
    )


def user(record: UserRecord) -> user_pb2.User:
    return user_pb2.User(
        id=record.id,
        email=record.email,
        active=record.active,
        create_time=timestamp(record.created_at),
        update_time=timestamp(record.updated_at),
        deactivate_time=timestamp(record.deactivated_at),
    )


# -- profile -------------------------------------------------------------------------------------


def profile_to_proto(record: ProfileRecord) -> user_pb2.Profile:
    return user_pb2.Profile(
        user_id=record.user_id,
        nickname=record.nickname,
        avatar_url=record.avatar_url or "",
        preferences=dict_to_struct(record.preferences),
        principles=record.principles,
        create_time=timestamp(record.created_at),
        update_time=timestamp(record.updated_at),
        etag=record.etag,
    )


ProfileChange = Callable[[ProfileRecord], dict[str, Any]]


def profile_update(request: user_pb2.UpdateProfileRequest) -> tuple[str, ProfileChange]:
    """Validates the request; returns the etag and the change to apply to the stored profile."""
    given = request.profile
    paths = update_paths(request.update_mask, given, PROFILE_FIELDS)
    v = Violations()
    v.etag("profile.etag", given.etag)
    values: dict[str, Any] = {}
    if "nickname" in paths:
        values["nickname"] = profile.check_nickname(v, "profile.nickname", given.nickname)
    if "avatar_url" in paths:
        values["avatar_url"] = profile.check_avatar_url(v, "profile.avatar_url", given.avatar_url)
    if "principles" in paths:
        values["principles"] = profile.check_principles(v, "profile.principles", list(given.principles))
    patch: dict[str, JSON] | None = None
    if "preferences" in paths:
        patch = v.struct("profile.preferences", given.preferences)
    v.raise_if_any()

    def change(current: ProfileRecord) -> dict[str, Any]:
        if patch is None:
            return values
        merged = profile.merge_patch(current.preferences, patch)
        assert isinstance(merged, dict)
        checks = Violations()
        profile.check_preferences(checks, "profile.preferences", merged)
        checks.raise_if_any()
        return {**values, "preferences": merged}

    return given.etag, change


# -- settings ------------------------------------------------------------------------------------


def setting_key(key: str) -> str:
    v = Violations()
    setting_rules.check_key(v, "key", key)
    v.raise_if_any()
    return key


def setting_write(request: user_pb2.SetSettingRequest) -> tuple[str, JSON, str]:
    given = request.setting
    v = Violations()
    setting_rules.check_key(v, "setting.key", given.key)
    v.etag("setting.etag", given.etag)
    value: JSON = None
    if not given.HasField("value") or given.value.WhichOneof("kind") is None:
        v.add("setting.value", "is required (use a JSON null value to store null)")
    else:
        before = len(v.items)
        value = v.value("setting.value", given.value)
        if len(v.items) == before:
            setting_rules.check_value(v, "setting.value", value)
    v.raise_if_any()
    return given.key, value, given.etag


def setting_to_proto(record: SettingRecord) -> user_pb2.Setting:
    return user_pb2.Setting(
        id=record.id,
        user_id=record.user_id,
        key=record.key,
        value=json_to_value(record.value),
        create_time=timestamp(record.created_at),
        update_time=timestamp(record.updated_at),
        etag=record.etag,
    )


def setting_delete(request: user_pb2.DeleteSettingRequest) -> tuple[str, str]:
    """The key of a DeleteSetting and its etag."""
    v = Violations()
    setting_rules.check_key(v, "key", request.key)
    v.etag("etag", request.etag)
    v.raise_if_any()
    return request.key, request.etag


def settings_list(user_id: str) -> Keyset[SettingCursor]:
    return Keyset(SettingCursor, "settings", user_id)


# -- connections ---------------------------------------------------------------------------------


def connection_id(value: str) -> str:
    return required_uuid("connection_id", value)


def connection_delete(request: user_pb2.DeleteConnectionRequest) -> tuple[str, str]:
    """The id of a DeleteConnection and its etag."""
    v = Violations()
    ident = v.uuid("connection_id", request.connection_id)
    v.etag("etag", request.etag)
    v.raise_if_any()
    assert ident is not None
    return ident, request.etag


def connections_list(
    request: user_pb2.ListConnectionsRequest, user_id: str
) -> tuple[str | None, Keyset[ConnectionCursor]]:
    """The agent a ListConnections names (None: every agent's) and the list's keyset."""
    agent_id = optional_agent_filter(request.agent_id)
    return agent_id, Keyset(ConnectionCursor, "connections", user_id, agent_id)


@dataclass(frozen=True)
class NewConnection:
    agent_id: str
    provider: str
    display_name: str
    status: str
    credentials: dict[str, JSON]
    key: RequestKey | None


def _status(v: Violations, field: str, value: int, *, required: bool) -> str | None:
    v.enum(field, value, user_pb2.ConnectionStatus.DESCRIPTOR, required=required)
    return STATUS_FROM_PROTO.get(value)


def new_connection(request: user_pb2.CreateConnectionRequest, user_id: str, keys: Sequence[bytes]) -> NewConnection:
    """`keys` digest the request for its request_id: it carries credentials (kit.idempotency)."""
    given = request.connection
    v = Violations()
    agent_id = v.slug("connection.agent_id", given.agent_id)
    provider = conn_rules.check_provider(v, "connection.provider", given.provider)
    display_name = conn_rules.check_display_name(v, "connection.display_name", given.display_name)
    status = _status(v, "connection.status", given.status, required=False) or "active"
    credentials = v.struct("credentials", request.credentials)
    if not _last_is(v, "credentials"):
        conn_rules.check_credentials(v, "credentials", credentials)
    key = idempotency.key(v, request, request.request_id, principal=user_id, method="CreateConnection", keys=keys)
    v.raise_if_any()
    return NewConnection(agent_id, provider, display_name, status, credentials, key)


@dataclass(frozen=True)
class ConnectionChange:
    connection_id: str
    etag: str
    values: dict[str, Any]
    credentials: dict[str, JSON] | None


def connection_change(request: user_pb2.UpdateConnectionRequest) -> ConnectionChange:
    given = request.connection
    if request.update_mask.paths:
        paths = update_paths(request.update_mask, given, CONNECTION_FIELDS)
    else:
        # AIP-134: no mask means every field that is set; `credentials` sits beside the resource.
        paths = {fd.name for fd, _ in given.ListFields()} & set(CONNECTION_FIELDS)
        if request.credentials.fields:
            paths.add("credentials")
        if not paths:
            raise invalid("update_mask", "names no field, and no updatable field is set")
    v = Violations()
    ident = v.uuid("connection.id", given.id)
    v.etag("connection.etag", given.etag)
    values: dict[str, Any] = {}
    if "display_name" in paths:
        values["display_name"] = conn_rules.check_display_name(v, "connection.display_name", given.display_name)
    if "status" in paths:
        values["status"] = _status(v, "connection.status", given.status, required=True)
    credentials: dict[str, JSON] | None = None
    if "credentials" in paths:
        credentials = v.struct("credentials", request.credentials)
        if not _last_is(v, "credentials"):
            conn_rules.check_credentials(v, "credentials", credentials)
    v.raise_if_any()
    assert ident is not None
    return ConnectionChange(ident, given.etag, values, credentials)


def optional_agent_filter(value: str) -> str | None:
    if not value:
        return None
    v = Violations()
    v.slug("agent_id", value)
    v.raise_if_any()
    return value


def reveal_request(request: user_pb2.RevealConnectionCredentialsRequest) -> tuple[str, str]:
    v = Violations()
    ident = v.uuid("connection_id", request.connection_id)
    purpose = v.text("purpose", request.purpose, max_len=conn_rules.MAX_PURPOSE)
    v.raise_if_any()
    assert ident is not None
    return ident, purpose


def connection_to_proto(record: ConnectionRecord) -> user_pb2.Connection:
    return user_pb2.Connection(
        id=record.id,
        user_id=record.user_id,
        agent_id=record.agent_id,
        provider=record.provider,
        display_name=record.display_name,
        status=STATUS_TO_PROTO[record.status],
        credentials_fingerprint=record.credentials_fingerprint,
        last_verify_time=timestamp(record.last_verified_at),
        create_time=timestamp(record.created_at),
        update_time=timestamp(record.updated_at),
        etag=record.etag,
    )


def revealed(record: ConnectionRecord, credentials: dict[str, JSON]) -> user_pb2.RevealConnectionCredentialsResponse:
    return user_pb2.RevealConnectionCredentialsResponse(
        connection=connection_to_proto(record), credentials=dict_to_struct(credentials)
    )


def reveals_list(
    request: user_pb2.ListCredentialRevealsRequest, principal: Principal
) -> tuple[RevealFilter, Keyset[RevealCursor]]:
    """Whose reveals a ListCredentialReveals reads: a user's own, or, for an auditor's service
    token, the user it names (None: everyone's); and of which connection."""
    v = Violations()
    connection = v.uuid("connection_id", request.connection_id, required=False)
    named = v.uuid("user_id", request.user_id, required=False) if request.user_id != "me" else None
    v.raise_if_any()
    owner = access.reveals_owner(principal, request.user_id, named)
    keyset = Keyset(RevealCursor, "reveals", principal.subject, owner, connection)
    return RevealFilter(owner, connection), keyset


def reveal_to_proto(record: RevealRecord) -> user_pb2.CredentialReveal:
    return user_pb2.CredentialReveal(
        id=record.id,
        connection_id=record.connection_id,
        user_id=record.user_id,
        actor=record.actor,
        token_id=record.token_id,
        purpose=record.purpose,
        reveal_time=timestamp(record.revealed_at),
    )
