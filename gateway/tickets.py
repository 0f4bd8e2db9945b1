"""Stream tickets: how a browser's EventSource, which cannot send an Authorization header, opens
one task's Server-Sent Events stream (CreateStreamTicket, then `?ticket=…` on the events URL).

A ticket is the caller's access token, the task id and an expiry, sealed with AES-256-GCM under
the gateway's ticket key; the associated data names the purpose and the task, so a ticket opens
exactly that task's events route and nothing else (not another task's, not an RPC). Opening it
runs the sealed token through the same verification as a bearer header, so an expired or revoked
token fails as it would there; the ticket's own expiry is a few minutes and never later than the
token's. The gateway keeps no state: any replica with the same key opens any replica's ticket.
Tickets are never logged, and the token inside is never readable without the key.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
import time
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from nexus.kit.config import Settings
from nexus.kit.errors import Unauthenticated

TTL_S = 300
MAX_TICKET = 4096
_NONCE = 12
_KEY_BYTES = 32
_PURPOSE = b"nexus.gateway.v1/task-events/"


@dataclass(frozen=True)
class Ticket:
    token: str
    task_id: str
    user_id: str
    expires_at: float


def _refused() -> Unauthenticated:
    # One answer for every way a ticket can be wrong, so a caller learns nothing from the difference.
    return Unauthenticated("the stream ticket is not valid for this task (or has expired)", reason="TICKET_INVALID")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TicketSealer:
    def __init__(self, key: bytes) -> None:
        if len(key) != _KEY_BYTES:
            raise ValueError("a ticket key is 32 bytes")
        self._aead = AESGCM(key)

    @classmethod
    def from_settings(cls, settings: Settings) -> TicketSealer:
        """The key file every replica shares (NEXUS_STREAM_TICKET_KEY_FILE: 32 random bytes, hex),
        or a key of this process only."""
        path = settings.stream_ticket_key_file
        if path is None:
            return cls(secrets.token_bytes(_KEY_BYTES))
        return cls(bytes.fromhex(path.read_text().strip()))

    def mint(
        self, *, token: str, task_id: str, user_id: str, token_expires_at: float, now: float | None = None
    ) -> tuple[str, float]:
        """A sealed ticket and when it expires: TTL_S from now, or when the token does."""
        expires_at = min((time.time() if now is None else now) + TTL_S, token_expires_at)
        payload = json.dumps({"tok": token, "sub": user_id, "exp": expires_at}).encode()
        nonce = os.urandom(_NONCE)
        return _b64(nonce + self._aead.encrypt(nonce, payload, _PURPOSE + task_id.encode())), expires_at

    def open(self, text: str, *, task_id: str, now: float | None = None) -> Ticket:
        """The ticket, if it was sealed for this task by a gateway with this key and has not
        expired; else UNAUTHENTICATED (TICKET_INVALID), the same for every failure."""
        if not text or len(text) > MAX_TICKET:
            raise _refused()
        try:
            raw = _unb64(text)
            payload = self._aead.decrypt(raw[:_NONCE], raw[_NONCE:], _PURPOSE + task_id.encode())
            fields = json.loads(payload)
            ticket = Ticket(str(fields["tok"]), task_id, str(fields["sub"]), float(fields["exp"]))
        except (InvalidTag, ValueError, KeyError, TypeError, binascii.Error):
            raise _refused() from None
        if ticket.expires_at <= (time.time() if now is None else now):
            raise _refused()
        return ticket
