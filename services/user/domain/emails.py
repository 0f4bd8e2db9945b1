"""Email addresses: one normal form for display and one case-free key for uniqueness."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

MAX_EMAIL_LEN = 254  # RFC 5321: the longest address that fits in a path
MAX_LOCAL_LEN = 64

_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
# Printable, no spaces, no characters that quote or route (RFC 5322 specials outside dot-atom).
_LOCAL_FORBIDDEN = re.compile(r'[\s"(),:;<>@\[\\\]]')


class EmailError(ValueError):
    """Why an address is not accepted; the message never repeats the address."""


@dataclass(frozen=True)
class Email:
    # As the user typed it, trimmed, NFC-normalised, domain in lower case: what we display.
    address: str
    # Lower case throughout: two addresses that differ only in case are the same account.
    key: str


def normalise_email(raw: str) -> Email:
    """Validates an address and returns its normal form and its uniqueness key."""
    value = unicodedata.normalize("NFC", raw.strip())
    if not value:
        raise EmailError("is required")
    if len(value) > MAX_EMAIL_LEN:
        raise EmailError(f"must be at most {MAX_EMAIL_LEN} characters")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn") for ch in value):
        raise EmailError("contains a control or invalid character")
    local, at, domain = value.rpartition("@")
    if not at or not local or not domain:
        raise EmailError("must look like name@example.com")
    if len(local) > MAX_LOCAL_LEN:
        raise EmailError(f"has a part before '@' longer than {MAX_LOCAL_LEN} characters")
    if _LOCAL_FORBIDDEN.search(local) or local.startswith(".") or local.endswith(".") or ".." in local:
        raise EmailError("has an invalid part before '@'")
    ascii_domain = _ascii_domain(domain.lower().rstrip("."))
    labels = ascii_domain.split(".")
    if len(labels) < 2 or not all(_LABEL.fullmatch(label) for label in labels) or labels[-1].isdigit():
        raise EmailError("has an invalid domain")
    display_domain = domain.lower().rstrip(".")
    return Email(address=f"{local}@{display_domain}", key=f"{local.lower()}@{ascii_domain}")


def _ascii_domain(domain: str) -> str:
    """Internationalised domains compare by their ASCII (punycode) form."""
    if domain.isascii():
        return domain
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        raise EmailError("has an invalid domain") from None


def default_nickname(email: Email) -> str:
    return email.address.rpartition("@")[0][:64]
