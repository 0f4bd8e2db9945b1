"""Stream tickets without a server: sealed to one task, expiring, unforgeable, opaque."""

from __future__ import annotations

import secrets
import uuid

import pytest

from gateway.tickets import TTL_S, TicketSealer
from nexus.kit.errors import Unauthenticated

NOW = 1_900_000_000.0


def sealer() -> TicketSealer:
    return TicketSealer(secrets.token_bytes(32))


def test_a_ticket_opens_its_task_until_it_expires() -> None:
    seal, task = sealer(), str(uuid.uuid4())
    ticket, expires_at = seal.mint(token="tok", task_id=task, user_id="u1", token_expires_at=NOW + 900, now=NOW)
    assert expires_at == NOW + TTL_S
    opened = seal.open(ticket, task_id=task, now=NOW + TTL_S - 1)
    assert (opened.token, opened.user_id, opened.task_id) == ("tok", "u1", task)
    with pytest.raises(Unauthenticated):
        seal.open(ticket, task_id=task, now=NOW + TTL_S)


def test_a_ticket_never_outlives_the_token_inside() -> None:
    seal, task = sealer(), str(uuid.uuid4())
    ticket, expires_at = seal.mint(token="tok", task_id=task, user_id="u1", token_expires_at=NOW + 10, now=NOW)
    assert expires_at == NOW + 10
    with pytest.raises(Unauthenticated):
        seal.open(ticket, task_id=task, now=NOW + 11)


@pytest.mark.parametrize("how", ["other task", "other key", "flipped", "truncated", "garbage", "empty"])
def test_every_wrong_ticket_gets_the_same_refusal(how: str) -> None:
    seal, task = sealer(), str(uuid.uuid4())
    ticket, _ = seal.mint(token="tok", task_id=task, user_id="u1", token_expires_at=NOW + 900, now=NOW)
    wrong = {
        "other task": (seal, ticket, str(uuid.uuid4())),
        "other key": (sealer(), ticket, task),
        "flipped": (seal, ticket[:20] + ("A" if ticket[20] != "A" else "B") + ticket[21:], task),
        "truncated": (seal, ticket[:-3], task),
        "garbage": (seal, "%%%not base64%%%", task),
        "empty": (seal, "", task),
    }[how]
    with pytest.raises(Unauthenticated) as refused:
        wrong[0].open(wrong[1], task_id=wrong[2], now=NOW)
    assert refused.value.reason == "TICKET_INVALID"


def test_the_token_inside_cannot_be_read_from_the_ticket() -> None:
    token = "eyJhbGciOiJFZERTQSJ9.secret-payload.signature"
    ticket, _ = sealer().mint(token=token, task_id=str(uuid.uuid4()), user_id="u1", token_expires_at=NOW + 900, now=NOW)
    assert "secret" not in ticket and "eyJ" not in ticket
