"""The values the store returns and the servicer converts: plain frozen dataclasses."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from nexus.kit.protos import etag
from nexus.kit.validation import JSON


@dataclass(frozen=True)
class UserRecord:
    id: str
    email: str
    active: bool
    created_at: datetime
    updated_at: datetime
    deactivated_at: datetime | None


@dataclass(frozen=True)
class ProfileRecord:
    user_id: str
    nickname: str
    avatar_url: str | None
    preferences: dict[str, JSON]
    principles: list[str]
    version: int
    created_at: datetime
    updated_at: datetime

    @property
    def etag(self) -> str:
        return etag(self.version)


@dataclass(frozen=True)
class SettingRecord:
    id: str
    user_id: str
    key: str
    value: JSON
    version: int
    created_at: datetime
    updated_at: datetime

    @property
    def etag(self) -> str:
        return etag(self.version)


@dataclass(frozen=True)
class ConnectionRecord:
    id: str
    user_id: str
    agent_id: str
    provider: str
    display_name: str
    status: str
    credentials_fingerprint: str
    last_verified_at: datetime | None
    version: int
    created_at: datetime
    updated_at: datetime

    @property
    def etag(self) -> str:
        return etag(self.version)


@dataclass(frozen=True)
class StoredCredentials:
    """A connection's ciphertext as stored: what decryption needs besides the key."""

    connection_id: str
    user_id: str
    provider: str
    key_id: str
    blob: bytes = field(repr=False)


@dataclass(frozen=True)
class RevealRecord:
    id: int
    connection_id: str
    user_id: str
    actor: str
    token_id: str
    purpose: str
    revealed_at: datetime


@dataclass(frozen=True)
class SignInCandidate:
    user_id: str
    password_hash: str
    active: bool


@dataclass(frozen=True)
class RefreshTokenState:
    """A presented refresh token as found, locked, in the database."""

    family_id: str
    user_id: str
    used: bool
    expired: bool
    family_revoked: bool
    user_active: bool


@dataclass(frozen=True)
class IssuedRefresh:
    token: str
    expires_at: datetime
    # The sign-in (refresh family) the token belongs to: the access tokens' `sid`.
    family_id: str


@dataclass(frozen=True)
class RevocationRecord:
    """An ended sign-in as WatchRevocations publishes it."""

    seq: int
    session_digest: bytes
    expires_at: datetime


@dataclass(frozen=True)
class IssuedTokens:
    user_id: str
    access_token: str
    access_expires_at: datetime
    refresh: IssuedRefresh
