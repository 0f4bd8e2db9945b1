"""Ed25519 JWTs: signing keys on disk, minting, and verification against a key set.

The User service signs access tokens; `nexus token mint` signs service tokens with the same keys.
Every service verifies with public keys only: from the `*.pub` files beside the signing keys when
it shares the machine, otherwise from the User service's GetKeySet RPC.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, Protocol

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from nexus.kit.errors import PermissionDenied, Unauthenticated

ALGORITHM = "EdDSA"
PrincipalKind = Literal["user", "service"]


@dataclass(frozen=True)
class Principal:
    """The authenticated caller, derived only from a verified token."""

    subject: str
    kind: PrincipalKind
    scopes: frozenset[str]
    token: str
    token_id: str
    expires_at: float
    # The sign-in (refresh-token family) a user's access token belongs to: its `sid` claim. What
    # a revocation names, so sign-out reaches every service (nexus.kit.revocations).
    session_id: str | None = None

    @property
    def user_id(self) -> str:
        """The caller's user id; service tokens act for no user and are refused here."""
        if self.kind != "user":
            raise PermissionDenied("this call needs a user's access token", reason="USER_TOKEN_REQUIRED")
        return self.subject

    @property
    def is_user(self) -> bool:
        return self.kind == "user"

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes

    def require_scope(self, scope: str) -> None:
        if scope not in self.scopes:
            raise PermissionDenied(
                f"this call needs a token with scope {scope!r}",
                reason="MISSING_SCOPE",
                metadata={"scope": scope},
            )

    def require_user_or_scope(self, scope: str) -> None:
        """For calls a user's token or a scoped service token may make: the refusal names both,
        so an operator is not sent off to mint a scope when a user's token was what it needed."""
        if self.kind != "user" and scope not in self.scopes:
            raise PermissionDenied(
                f"this call needs a user's access token or a service token with scope {scope!r}",
                reason="MISSING_SCOPE",
                metadata={"scope": scope},
            )


# -- keys on disk -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: Ed25519PrivateKey

    @property
    def public_bytes(self) -> bytes:
        return self.private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def generate_signing_key(directory: Path) -> SigningKey:
    """Writes `<kid>.key` (0600) and `<kid>.pub`. Kids sort by creation, so the newest signs."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Microseconds: two keys made within one second must still sort in creation order.
    kid = f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{secrets.token_hex(3)}"
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    private_path = directory / f"{kid}.key"
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    signing = SigningKey(kid, key)
    (directory / f"{kid}.pub").write_bytes(signing.public_bytes.hex().encode() + b"\n")
    return signing


def load_signing_keys(directory: Path) -> list[SigningKey]:
    """Every private key in the directory, oldest first."""
    keys = []
    for path in sorted(directory.glob("*.key")) if directory.is_dir() else []:
        private = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(private, Ed25519PrivateKey):
            raise ValueError(f"{path} is not an Ed25519 key")
        keys.append(SigningKey(path.stem, private))
    return keys


def load_public_keys(directory: Path) -> dict[str, Ed25519PublicKey]:
    keys = {}
    for path in sorted(directory.glob("*.pub")) if directory.is_dir() else []:
        keys[path.stem] = Ed25519PublicKey.from_public_bytes(bytes.fromhex(path.read_text().strip()))
    return keys


def ensure_signing_key(directory: Path) -> SigningKey:
    keys = load_signing_keys(directory)
    return keys[-1] if keys else generate_signing_key(directory)


# -- minting ------------------------------------------------------------------------------------


class TokenSigner:
    def __init__(self, key: SigningKey, *, issuer: str, audience: str) -> None:
        self.key = key
        self.issuer = issuer
        self.audience = audience

    def mint(
        self,
        subject: str,
        *,
        kind: PrincipalKind,
        scopes: Iterable[str],
        ttl_s: int,
        extra: dict[str, str] | None = None,
    ) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": subject,
            "iat": now,
            "nbf": now,
            "exp": now + ttl_s,
            "jti": secrets.token_urlsafe(12),
            "typ": kind,
            "scope": " ".join(sorted(set(scopes))),
            **(extra or {}),
        }
        return jwt.encode(claims, self.key.private_key, algorithm=ALGORITHM, headers={"kid": self.key.kid})


# -- verification -------------------------------------------------------------------------------


class KeySet(Protocol):
    async def get(self, kid: str) -> Ed25519PublicKey | None: ...


class _RefreshingKeySet:
    """Caches keys; on an unknown kid reloads at most once per `min_refresh_s`, so a flood of
    tokens with made-up kids cannot turn into a flood of reloads."""

    def __init__(self, load: Callable[[], Awaitable[dict[str, Ed25519PublicKey]]], min_refresh_s: float) -> None:
        self._load = load
        self._keys: dict[str, Ed25519PublicKey] = {}
        self._loaded_at = float("-inf")
        self._min_refresh_s = min_refresh_s
        self._lock = asyncio.Lock()

    async def get(self, kid: str) -> Ed25519PublicKey | None:
        key = self._keys.get(kid)
        if key is not None:
            return key
        async with self._lock:
            if kid not in self._keys and time.monotonic() - self._loaded_at >= self._min_refresh_s:
                self._loaded_at = time.monotonic()
                self._keys = await self._load()
        return self._keys.get(kid)


class LocalKeySet(_RefreshingKeySet):
    """Public keys from the `*.pub` files of a signing-key directory."""

    def __init__(self, directory: Path, min_refresh_s: float = 1.0) -> None:
        async def load() -> dict[str, Ed25519PublicKey]:
            return await asyncio.to_thread(load_public_keys, directory)

        super().__init__(load, min_refresh_s)


class FetchedKeySet(_RefreshingKeySet):
    """Public keys from a fetch function (the User service's GetKeySet RPC)."""

    def __init__(self, fetch: Callable[[], Awaitable[dict[str, bytes]]], min_refresh_s: float = 5.0) -> None:
        async def load() -> dict[str, Ed25519PublicKey]:
            raw = await fetch()
            return {kid: Ed25519PublicKey.from_public_bytes(key) for kid, key in raw.items()}

        super().__init__(load, min_refresh_s)


class TokenVerifier:
    """Verifies bearer tokens; results are cached until the token expires, because the same token
    arrives on every call of a client and Ed25519 verification is the costliest step of a call."""

    def __init__(self, keys: KeySet, *, issuer: str, audience: str, cache_size: int = 10_000) -> None:
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._cache: OrderedDict[str, Principal] = OrderedDict()
        self._cache_size = cache_size

    def cached(self, token: str) -> Principal | None:
        """The principal of a token verified before and not yet expired, else None."""
        cached = self._cache.get(token)
        if cached is None:
            return None
        if cached.expires_at > time.time():
            self._cache.move_to_end(token)
            return cached
        del self._cache[token]
        return None

    async def verify(self, token: str) -> Principal:
        cached = self.cached(token)
        if cached is not None:
            return cached
        principal = await self._verify(token)
        self._cache[token] = principal
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return principal

    async def _verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthenticated("the token is malformed", reason="TOKEN_MALFORMED") from None
        if header.get("alg") != ALGORITHM:
            raise Unauthenticated("the token's algorithm is not accepted", reason="TOKEN_ALGORITHM")
        kid = header.get("kid")
        key = await self._keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise Unauthenticated("the token is signed by an unknown key", reason="TOKEN_UNKNOWN_KEY")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                leeway=5,
                options={"require": ["exp", "iat", "sub", "jti", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the token has expired", reason="TOKEN_EXPIRED") from None
        except jwt.PyJWTError:
            raise Unauthenticated("the token is not valid", reason="TOKEN_INVALID") from None
        kind = claims.get("typ")
        session_id = claims.get("sid")
        if (
            kind not in ("user", "service")
            or not isinstance(claims.get("scope", ""), str)
            or not isinstance(session_id, str | None)
        ):
            raise Unauthenticated("the token is not valid", reason="TOKEN_INVALID")
        return Principal(
            subject=str(claims["sub"]),
            kind=kind,
            scopes=frozenset(claims.get("scope", "").split()),
            token=token,
            token_id=str(claims["jti"]),
            expires_at=float(claims["exp"]),
            session_id=session_id,
        )
