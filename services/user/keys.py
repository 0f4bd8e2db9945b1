"""Key material on disk: the credential key ring file and the token signing keys.

The credential key ring comes from configuration (`NEXUS_CREDENTIAL_KEYS_FILE`), never from the
database. A running service notices a newly added key without a restart: before encrypting it
checks whether the file changed, and on meeting an unknown key id it re-reads the file.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import stat
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from nexus.kit.config import ConfigError, Settings
from nexus.kit.errors import Internal
from nexus.kit.tokens import SigningKey, TokenSigner, load_public_keys, load_signing_keys
from nexus.kit.validation import JSON
from services.user.domain import envelope
from services.user.domain.envelope import (
    DataKey,
    KeyFileError,
    KeyRing,
    RowBinding,
    Sealed,
    Sealer,
    format_key_line,
    new_key,
    parse_key_file,
)
from services.user.domain.records import StoredCredentials

log = logging.getLogger("nexus.user.keys")

_HEADER = (
    "# Nexus credential keys: one '<key id> <base64 32-byte key>' per line, oldest first.\n"
    "# The last key encrypts; every key decrypts. Add keys with `nexus keys add-credential`;\n"
    "# remove one only after `nexus keys rotate` has moved every row off it.\n"
)


def read_ring(path: Path) -> KeyRing:
    """The ring in `path`; a missing, empty or malformed file is a ConfigError."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"no credential key file at {path}: the user service will not start without one. "
            "Run `nexus keys add-credential` (or `nexus up`, which creates it), or set NEXUS_CREDENTIAL_KEYS_FILE"
        ) from None
    except OSError as err:
        raise ConfigError(f"cannot read the credential key file {path}: {err.strerror}") from None
    try:
        ring = parse_key_file(text)
    except KeyFileError as err:
        raise ConfigError(f"credential key file {path}: {err}") from None
    if not ring:
        raise ConfigError(f"credential key file {path} holds no key; run `nexus keys add-credential`")
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("credential key file is readable by others", extra={"fields": {"path": str(path)}})
    return ring


def add_key(path: Path) -> DataKey:
    """Appends a new newest key (creating the file, mode 0600, if needed)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = new_key()
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "r+", encoding="utf-8") as f:
        # Two operators adding at once must not interleave their lines.
        fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        existing = f.read()
        ring = parse_key_file(existing)
        while ring.get(key.kid) is not None:
            key = new_key()
        prefix = "" if not existing else ("" if existing.endswith("\n") else "\n")
        f.write((_HEADER if not existing else prefix) + format_key_line(key))
        f.flush()
        os.fsync(f.fileno())
    return key


def ensure_key_file(path: Path) -> DataKey | None:
    """First run on one machine: a key file with one key. Returns the key if one was created."""
    if path.exists():
        try:
            ring = parse_key_file(path.read_text(encoding="utf-8"))
        except KeyFileError:
            return None  # malformed: left for the operator; the service says what is wrong
        if ring:
            return None
    return add_key(path)


class CredentialKeys:
    """The ring, reloaded when its file changes (checked before every encryption)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp = self._file_stamp()
        self._ring = read_ring(path)

    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _reload_if_changed(self) -> None:
        stamp = self._file_stamp()
        if stamp == self._stamp:
            return
        try:
            ring = read_ring(self.path)
        except ConfigError as err:
            # A half-edited or removed file must not take the service down: keep the old ring.
            log.error("credential key file not reloaded", extra={"fields": {"reason": str(err)}})
            return
        self._stamp = stamp
        if ring.kids() != self._ring.kids():
            log.info("credential keys reloaded", extra={"fields": {"kids": ring.kids()}})
        self._ring = ring

    @property
    def ring(self) -> KeyRing:
        return self._ring

    def for_encrypt(self) -> DataKey:
        self._reload_if_changed()
        return self._ring.newest

    def sealer(self, credentials: dict[str, JSON]) -> Sealer:
        """Seals `credentials` for the row it is given, under the newest key."""
        key = self.for_encrypt()

        def seal(binding: RowBinding) -> Sealed:
            return envelope.seal(key, binding, credentials)

        return seal

    def open(self, stored: StoredCredentials) -> dict[str, JSON]:
        """A row's credentials; DATA_LOSS when its ciphertext was altered or moved."""
        binding = RowBinding(connection_id=stored.connection_id, user_id=stored.user_id, provider=stored.provider)
        return envelope.open_sealed(self.for_decrypt(stored.key_id), binding, stored.blob)

    def digest_keys(self) -> tuple[bytes, ...]:
        """What digests requests that carry credentials (kit.idempotency), oldest first: every
        key's fingerprint key, so a digest made before a key was added still matches."""
        self._reload_if_changed()
        return tuple(key.fingerprint_key for key in self._ring.keys)

    def for_decrypt(self, kid: str) -> DataKey:
        key = self._ring.get(kid)
        if key is None:
            self._reload_if_changed()
            key = self._ring.get(kid)
        if key is None:
            raise Internal("the credential key of this row is not configured", reason="CREDENTIAL_KEY_MISSING")
        return key


class SigningKeys:
    """The newest signing key signs (chosen at start); every public key in the directory is
    published, so a key added for rotation is announced before it signs anything."""

    def __init__(self, settings: Settings) -> None:
        self.directory = settings.resolved_signing_keys_dir
        keys = load_signing_keys(self.directory)
        if not keys:
            raise ConfigError(
                f"no token signing key in {self.directory}: run `nexus keys add-signing` "
                "(or `nexus up`), or set NEXUS_SIGNING_KEYS_DIR"
            )
        self.current: SigningKey = keys[-1]
        self.signer = TokenSigner(self.current, issuer=settings.token_issuer, audience=settings.token_audience)

    async def published(self) -> dict[str, bytes]:
        keys: dict[str, Ed25519PublicKey] = await asyncio.to_thread(load_public_keys, self.directory)
        published = {kid: _raw(key) for kid, key in keys.items()}
        published[self.current.kid] = self.current.public_bytes
        return dict(sorted(published.items()))


def _raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
