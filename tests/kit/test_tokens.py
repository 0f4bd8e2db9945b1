"""Token verification: everything DESIGN §2 says a verifier must reject gets UNAUTHENTICATED."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from nexus.kit.errors import PermissionDenied, Unauthenticated
from nexus.kit.tokens import (
    LocalKeySet,
    TokenSigner,
    TokenVerifier,
    ensure_signing_key,
    generate_signing_key,
    load_signing_keys,
)
from tests.support import eventually


@pytest.fixture
def keys_dir(tmp_path: Path) -> Path:
    return tmp_path / "signing"


def signer_for(keys_dir: Path) -> TokenSigner:
    return TokenSigner(generate_signing_key(keys_dir), issuer="nexus", audience="nexus")


def verifier_for(keys_dir: Path, *, issuer: str = "nexus", audience: str = "nexus") -> TokenVerifier:
    return TokenVerifier(LocalKeySet(keys_dir, min_refresh_s=0), issuer=issuer, audience=audience)


async def rejected(verifier: TokenVerifier, token: str) -> str:
    with pytest.raises(Unauthenticated) as raised:
        await verifier.verify(token)
    return raised.value.reason


async def test_valid_token_yields_principal_with_scopes(keys_dir: Path) -> None:
    token = signer_for(keys_dir).mint("service:w1", kind="service", scopes=["runtime.worker"], ttl_s=60)
    principal = await verifier_for(keys_dir).verify(token)
    assert principal.subject == "service:w1"
    assert principal.has_scope("runtime.worker")
    principal.require_scope("runtime.worker")
    with pytest.raises(PermissionDenied):
        principal.require_scope("user.connections.reveal")
    with pytest.raises(PermissionDenied):
        _ = principal.user_id
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert header["alg"] == "EdDSA" and header["kid"]
    assert {"iss", "aud", "sub", "exp", "jti", "scope"} <= claims.keys()


async def test_expired_token_is_rejected(keys_dir: Path) -> None:
    token = signer_for(keys_dir).mint("u", kind="user", scopes=[], ttl_s=-60)
    assert await rejected(verifier_for(keys_dir), token) == "TOKEN_EXPIRED"


async def test_wrong_audience_or_issuer_is_rejected(keys_dir: Path) -> None:
    token = signer_for(keys_dir).mint("u", kind="user", scopes=[], ttl_s=60)
    assert await rejected(verifier_for(keys_dir, audience="other"), token) == "TOKEN_INVALID"
    assert await rejected(verifier_for(keys_dir, issuer="evil"), token) == "TOKEN_INVALID"


async def test_token_signed_by_unknown_key_is_rejected(keys_dir: Path, tmp_path: Path) -> None:
    stranger = signer_for(tmp_path / "elsewhere")
    verifier = verifier_for(keys_dir)
    signer_for(keys_dir)
    token = stranger.mint("u", kind="user", scopes=[], ttl_s=60)
    assert await rejected(verifier, token) == "TOKEN_UNKNOWN_KEY"
    # Same kid, different key: the signature check catches it.
    forged = TokenSigner(stranger.key, issuer="nexus", audience="nexus")
    forged.key = type(stranger.key)(signer_for(keys_dir).key.kid, stranger.key.private_key)
    assert await rejected(verifier, forged.mint("u", kind="user", scopes=[], ttl_s=60)) == "TOKEN_INVALID"


async def test_alg_none_is_rejected(keys_dir: Path) -> None:
    signer = signer_for(keys_dir)
    now = int(time.time())
    claims = {"iss": "nexus", "aud": "nexus", "sub": "u", "iat": now, "exp": now + 60, "jti": "x", "typ": "user"}
    token = jwt.encode(claims, None, algorithm="none", headers={"kid": signer.key.kid})  # type: ignore[arg-type]
    assert await rejected(verifier_for(keys_dir), token) == "TOKEN_ALGORITHM"


async def test_hs256_signed_with_the_public_key_is_rejected(keys_dir: Path) -> None:
    # The classic algorithm-confusion attack: HMAC keyed with the (public) verification key.
    signer = signer_for(keys_dir)
    public_pem = signer.key.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    now = int(time.time())
    claims = {"iss": "nexus", "aud": "nexus", "sub": "u", "iat": now, "exp": now + 60, "jti": "x", "typ": "user"}
    token = hs256(claims, {"alg": "HS256", "typ": "JWT", "kid": signer.key.kid}, public_pem)
    assert await rejected(verifier_for(keys_dir), token) == "TOKEN_ALGORITHM"


def hs256(claims: dict[str, object], header: dict[str, object], secret: bytes) -> str:
    """Built by hand: PyJWT itself refuses to HMAC with a PEM key."""

    def b64(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    signing_input = b64(json.dumps(header).encode()) + b"." + b64(json.dumps(claims).encode())
    signature = hmac.new(secret, signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + b64(signature)).decode()


async def test_garbage_is_rejected(keys_dir: Path) -> None:
    signer_for(keys_dir)
    assert await rejected(verifier_for(keys_dir), "not.a.jwt") == "TOKEN_MALFORMED"


async def test_rotation_old_and_new_keys_both_verify(keys_dir: Path) -> None:
    old = signer_for(keys_dir)
    verifier = verifier_for(keys_dir)
    old_token = old.mint("u", kind="user", scopes=[], ttl_s=60)
    assert (await verifier.verify(old_token)).subject == "u"
    new = signer_for(keys_dir)  # a second key appears while the verifier runs
    assert new.key.kid != old.key.kid
    assert (await verifier.verify(new.mint("v", kind="user", scopes=[], ttl_s=60))).subject == "v"
    assert (await verifier.verify(old_token)).subject == "u"


def test_private_key_file_is_owner_only(keys_dir: Path) -> None:
    key = generate_signing_key(keys_dir)
    assert (keys_dir / f"{key.kid}.key").stat().st_mode & 0o777 == 0o600


def test_the_newest_of_keys_made_in_the_same_second_signs(keys_dir: Path) -> None:
    made = [generate_signing_key(keys_dir).kid for _ in range(5)]
    assert [k.kid for k in load_signing_keys(keys_dir)] == made
    assert ensure_signing_key(keys_dir).kid == made[-1]


async def test_a_verified_token_is_served_from_the_cache_until_it_expires(keys_dir: Path) -> None:
    signer = signer_for(keys_dir)
    verifier = verifier_for(keys_dir)
    token = signer.mint("u1", kind="user", scopes=[], ttl_s=60)
    assert verifier.cached(token) is None  # never verified: no shortcut
    principal = await verifier.verify(token)
    assert verifier.cached(token) is principal
    short = signer.mint("u2", kind="user", scopes=[], ttl_s=1)
    expires_at = (await verifier.verify(short)).expires_at
    await eventually(lambda: time.time() > expires_at, "the short token's expiry")
    assert verifier.cached(short) is None  # expired: dropped, so the next call verifies afresh
