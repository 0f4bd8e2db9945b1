"""Pure rules of the User service, without a server."""

from __future__ import annotations

import asyncio

import pytest

from nexus.kit.errors import PermissionDenied, ResourceExhausted, Unauthenticated
from nexus.kit.tokens import Principal
from services.user.domain import access, signins
from services.user.domain.emails import EmailError, normalise_email
from services.user.domain.passwords import password_problem
from services.user.domain.records import RefreshTokenState
from services.user.hashing import PasswordHasher


@pytest.mark.parametrize(
    ("raw", "address", "key"),
    [
        ("  Ada@Example.COM ", "Ada@example.com", "ada@example.com"),
        ("first.last+tag@sub.example.co.uk", "first.last+tag@sub.example.co.uk", "first.last+tag@sub.example.co.uk"),
        ("Jörg@Bücher.example", "Jörg@bücher.example", "jörg@xn--bcher-kva.example"),
        ("Jo\u0308rg@example.com", "Jörg@example.com", "jörg@example.com"),  # NFC: one form per address
    ],
)
def test_emails_have_a_display_form_and_a_case_free_key(raw: str, address: str, key: str) -> None:
    email = normalise_email(raw)
    assert (email.address, email.key) == (address, key)


@pytest.mark.parametrize(
    "raw",
    ["", "plain", "@nowhere.test", "a@", "a@b", "a@-x.com", "a@x..com", ".a@x.com", "a..b@x.com", "a b@x.com",
     "a@x.123", "a\u200b@x.com", "a@" + "x" * 64 + ".com", "l" * 65 + "@x.com", "a@x.com\x00"],
)  # fmt: skip
def test_malformed_emails_are_refused_without_echoing_them(raw: str) -> None:
    with pytest.raises(EmailError) as raised:
        normalise_email(raw)
    assert not raw or raw not in str(raised.value)


def test_password_policy() -> None:
    assert password_problem("correct horse battery") is None
    assert password_problem("短いけど十分な長さのパスワード") is None
    assert password_problem("x" * 9) == "must be at least 10 characters"
    assert password_problem("x" * 129) == "must be at most 128 characters"
    assert password_problem(" " * 12) == "must not be only spaces"
    assert password_problem("abababababab") == "must contain at least 4 different characters"
    assert password_problem("Password123") == "is too common"
    assert password_problem("Alice.Smith@x.io", email_key="alice.smith@x.io") == "must not be the email address"
    assert password_problem("alice.smith", email_key="alice.smith@x.io") == "must not be the email address"


def state(**changes: bool) -> RefreshTokenState:
    values = {"used": False, "expired": False, "family_revoked": False, "user_active": True, **changes}
    return RefreshTokenState(family_id="f", user_id="u", **values)


def test_refresh_decisions() -> None:
    assert signins.decide_refresh(state()) is signins.Decision.ROTATE
    assert signins.decide_refresh(state(used=True)) is signins.Decision.REVOKE_FAMILY
    reasons = {}
    for name, current in {
        "unknown": None,
        "revoked": state(family_revoked=True, used=True),
        "expired": state(expired=True),
    }.items():
        with pytest.raises(Unauthenticated) as raised:
            signins.decide_refresh(current)
        reasons[name] = raised.value.reason
    assert reasons == {
        "unknown": "REFRESH_TOKEN_INVALID",
        "revoked": "REFRESH_TOKEN_REVOKED",
        "expired": "REFRESH_TOKEN_EXPIRED",
    }
    with pytest.raises(PermissionDenied):
        signins.decide_refresh(state(user_active=False))
    token = signins.new_refresh_token()
    assert signins.FORMAT.fullmatch(token) and len(signins.token_hash(token)) == 32


def principal(kind: str, subject: str, *scopes: str) -> Principal:
    return Principal(subject, kind, frozenset(scopes), "t", "j", 0.0)  # type: ignore[arg-type]


def test_access_rules() -> None:
    me = "123e4567-e89b-12d3-a456-426614174000"
    other = "223e4567-e89b-12d3-a456-426614174000"
    user = principal("user", me)
    assert access.own_user(user, "", kind="profile") == me
    assert access.own_user(user, "me", kind="profile") == me
    assert access.own_user(user, me.upper(), kind="profile") == me
    with pytest.raises(Exception, match="profile not found"):
        access.own_user(user, other, kind="profile")
    service = principal("service", "service:w", access.SCOPE_PROFILES_READ)
    assert access.user_or_scoped_service(service, other, scope=access.SCOPE_PROFILES_READ, kind="profile") == other
    with pytest.raises(PermissionDenied):
        access.user_or_scoped_service(service, other, scope=access.SCOPE_ADMIN, kind="user")
    with pytest.raises(PermissionDenied):
        access.own_user(service, other, kind="setting")


async def test_hashing_runs_off_the_event_loop_and_is_bounded() -> None:
    hasher = PasswordHasher(concurrency=1, queue_timeout_s=0.05)
    try:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.005)

        beat = asyncio.ensure_future(ticker())
        results = await asyncio.gather(*[hasher.hash("a password!") for _ in range(3)], return_exceptions=True)
        beat.cancel()
        hashed = [r for r in results if isinstance(r, str)]
        refused = [r for r in results if isinstance(r, ResourceExhausted)]
        # One slot and a short queue: the first runs, the others wait briefly and are refused.
        assert len(hashed) >= 1 and len(refused) >= 1 and len(hashed) + len(refused) == 3
        assert refused[0].reason == "PASSWORD_HASHING_BUSY"
        # The loop kept running while Argon2id worked in its thread: a hash on the loop's own
        # thread would let the ticker run at most once before the gather returned. (No rate is
        # asserted: on a loaded machine the loop may tick far less often than every 5 ms.)
        assert ticks >= 2
    finally:
        hasher.close()
