"""Password policy and Argon2id hashing (DESIGN §4).

The policy follows NIST SP 800-63B: a length range, a small blocklist, no composition rules.
Hashes are PHC strings (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`) from `cryptography`, with
parameters at or above OWASP's minimum (m=19 MiB, t=2, p=1).
"""

from __future__ import annotations

import os
import re
import secrets
import unicodedata
from dataclasses import dataclass

from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

MIN_LENGTH = 10
MAX_LENGTH = 128
# NFKC can expand a character; the byte cap bounds what reaches the hash whatever the input.
MAX_BYTES = 1024
MIN_DISTINCT = 4


@dataclass(frozen=True)
class Argon2Params:
    memory_kib: int = 19 * 1024
    iterations: int = 2
    lanes: int = 1
    salt_bytes: int = 16
    hash_bytes: int = 32


OWASP_MINIMUM = Argon2Params()
PARAMS = Argon2Params()

# The most common passwords of the required length; NIST asks for a blocklist of this kind.
_COMMON = frozenset(
    {
        "1234567890",
        "12345678910",
        "123456789012",
        "0123456789",
        "0987654321",
        "1q2w3e4r5t",
        "1qaz2wsx3edc",
        "qwertyuiop",
        "asdfghjkl;",
        "password12",
        "password123",
        "password1234",
        "passw0rd123",
        "iloveyou123",
        "qwerty1234",
        "qwerty12345",
        "abcdefghij",
        "abc1234567",
        "letmein123",
        "welcome123",
        "administrator",
        "changeme123",
        "football123",
        "baseball123",
        "superman123",
        "trustno1234",
        "monkey12345",
        "dragon12345",
    }
)

_PHC = re.compile(r"^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$")


def normalise(password: str) -> bytes:
    """NFKC, so the same password typed on different keyboards hashes the same (NIST 5.1.1.2)."""
    return unicodedata.normalize("NFKC", password).encode("utf-8")


def password_problem(password: str, *, email_key: str = "") -> str | None:
    """Why a new password is not accepted, or None. Never repeats the password."""
    if len(password) > MAX_LENGTH:
        return f"must be at most {MAX_LENGTH} characters"
    if len(password) < MIN_LENGTH:
        return f"must be at least {MIN_LENGTH} characters"
    if not password.strip():
        return "must not be only spaces"
    if len(normalise(password)) > MAX_BYTES:
        return f"must be at most {MAX_BYTES} bytes in UTF-8"
    if len(set(password)) < MIN_DISTINCT:
        return f"must contain at least {MIN_DISTINCT} different characters"
    folded = password.casefold()
    if folded in _COMMON:
        return "is too common"
    if email_key and (folded == email_key.casefold() or folded == email_key.partition("@")[0].casefold()):
        return "must not be the email address"
    return None


def hash_password(password: str, params: Argon2Params = PARAMS) -> str:
    """A PHC string. CPU- and memory-heavy: callers bound concurrency and run it off the loop."""
    kdf = Argon2id(
        salt=os.urandom(params.salt_bytes),
        length=params.hash_bytes,
        iterations=params.iterations,
        lanes=params.lanes,
        memory_cost=params.memory_kib,
    )
    return kdf.derive_phc_encoded(normalise(password))


def verify_password(password: str, phc: str) -> bool:
    try:
        Argon2id.verify_phc_encoded(normalise(password), phc)
    except InvalidKey:
        return False
    return True


def needs_rehash(phc: str, params: Argon2Params = PARAMS) -> bool:
    """True when a stored hash is weaker than the current parameters (they were raised)."""
    match = _PHC.match(phc)
    if match is None:
        return True
    memory, iterations, lanes = (int(g) for g in match.groups())
    return memory < params.memory_kib or iterations < params.iterations or lanes < params.lanes


def dummy_hash(params: Argon2Params = PARAMS) -> str:
    """A hash of a random password with the real parameters: an unknown email is verified
    against it, so it costs the same time as a wrong password."""
    return hash_password(secrets.token_urlsafe(24), params)
