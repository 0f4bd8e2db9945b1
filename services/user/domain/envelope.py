"""Connection credentials at rest (DESIGN §4): AES-256-GCM envelopes bound to their row.

Each write uses a fresh 12-byte nonce. The associated data names the table, the connection id,
the user id, the provider and the key id, so a ciphertext copied to another row (or relabelled
with another key id) fails authentication instead of decrypting in the wrong place.

The key ring is a text file from configuration, never the database: one `<kid> <base64 key>`
per line, oldest first, so the last line is the key that encrypts. `#` starts a comment.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from nexus.kit.errors import DataLoss, Internal
from nexus.kit.validation import JSON

KEY_BYTES = 32
NONCE_BYTES = 12
TABLE = "users.user_connection"
AAD_VERSION = "nexus-credentials-v1"
KID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
FINGERPRINT_PREFIX = "hmac-sha256:"
_FINGERPRINT_HEX = 24  # 96 bits: plenty to tell credentials apart, far too few to invert


class KeyFileError(ValueError):
    """The key file is malformed; the message names the line, never a key."""


@dataclass(frozen=True)
class DataKey:
    kid: str
    secret: bytes = field(repr=False)
    # Fingerprints use a key derived from the data key, never the data key itself.
    fingerprint_key: bytes = field(repr=False, compare=False, default=b"")

    def __post_init__(self) -> None:
        if not KID.fullmatch(self.kid):
            raise KeyFileError("a key id must be 1-64 characters of A-Z, a-z, 0-9, '_', '.' or '-'")
        if len(self.secret) != KEY_BYTES:
            raise KeyFileError(f"key {self.kid!r} must be {KEY_BYTES} bytes")
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"nexus credential fingerprint v1")
        object.__setattr__(self, "fingerprint_key", derived.derive(self.secret))


@dataclass(frozen=True)
class KeyRing:
    """Keys oldest first; the newest encrypts, any of them decrypts."""

    keys: tuple[DataKey, ...]

    def __post_init__(self) -> None:
        kids = [k.kid for k in self.keys]
        if len(set(kids)) != len(kids):
            raise KeyFileError("a key id appears twice")

    def __bool__(self) -> bool:
        return bool(self.keys)

    @property
    def newest(self) -> DataKey:
        if not self.keys:
            raise Internal("no credential key is configured", reason="CREDENTIAL_KEY_MISSING")
        return self.keys[-1]

    def get(self, kid: str) -> DataKey | None:
        for key in self.keys:
            if key.kid == kid:
                return key
        return None

    def kids(self) -> list[str]:
        return [k.kid for k in self.keys]


def new_key(kid: str | None = None) -> DataKey:
    kid = kid or f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"
    return DataKey(kid, os.urandom(KEY_BYTES))


def format_key_line(key: DataKey) -> str:
    return f"{key.kid} {base64.b64encode(key.secret).decode()}\n"


def parse_key_file(text: str) -> KeyRing:
    keys: list[DataKey] = []
    for number, line in enumerate(text.splitlines(), start=1):
        content = line.split("#", 1)[0].strip()
        if not content:
            continue
        parts = content.split()
        if len(parts) != 2:
            raise KeyFileError(f"line {number}: expected '<key id> <base64 key>'")
        kid, encoded = parts
        try:
            secret = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise KeyFileError(f"line {number}: the key is not valid base64") from None
        try:
            keys.append(DataKey(kid, secret))
        except KeyFileError as err:
            raise KeyFileError(f"line {number}: {err}") from None
    return KeyRing(tuple(keys))


@dataclass(frozen=True)
class RowBinding:
    """What a ciphertext belongs to; every part is authenticated."""

    connection_id: str
    user_id: str
    provider: str

    def associated_data(self, kid: str) -> bytes:
        return json.dumps(
            [AAD_VERSION, TABLE, self.connection_id, self.user_id, self.provider, kid],
            separators=(",", ":"),
            ensure_ascii=True,
        ).encode()


@dataclass(frozen=True)
class Sealed:
    kid: str
    blob: bytes = field(repr=False)  # nonce || ciphertext || tag
    fingerprint: str


# Seals credentials for a row: given the binding, returns the ciphertext under the newest key.
Sealer = Callable[[RowBinding], Sealed]


def canonical_json(credentials: dict[str, JSON]) -> bytes:
    return json.dumps(credentials, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def fingerprint(key: DataKey, plaintext: bytes) -> str:
    digest = hmac.new(key.fingerprint_key, plaintext, hashlib.sha256).hexdigest()
    return FINGERPRINT_PREFIX + digest[:_FINGERPRINT_HEX]


def seal(key: DataKey, binding: RowBinding, credentials: dict[str, JSON]) -> Sealed:
    plaintext = canonical_json(credentials)
    nonce = os.urandom(NONCE_BYTES)
    ciphertext = AESGCM(key.secret).encrypt(nonce, plaintext, binding.associated_data(key.kid))
    return Sealed(key.kid, nonce + ciphertext, fingerprint(key, plaintext))


def open_sealed(key: DataKey, binding: RowBinding, blob: bytes) -> dict[str, JSON]:
    """Decrypts; a ciphertext that was altered or belongs to another row is DATA_LOSS."""
    unreadable = DataLoss(
        "the stored credentials cannot be decrypted; they were altered or belong to another row",
        reason="CREDENTIALS_UNREADABLE",
    )
    if len(blob) < NONCE_BYTES + 16:
        raise unreadable
    try:
        plaintext = AESGCM(key.secret).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], binding.associated_data(key.kid))
    except InvalidTag:
        raise unreadable from None
    value = json.loads(plaintext)
    if not isinstance(value, dict):
        raise unreadable
    return value


def reseal(old: DataKey, new: DataKey, binding: RowBinding, blob: bytes) -> Sealed:
    """Rotation: decrypt under the row's key, encrypt under the newest."""
    return seal(new, binding, open_sealed(old, binding, blob))
