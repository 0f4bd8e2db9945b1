"""Token buckets and client addresses, without a server (the flood tests drive them through real
channels: tests/user/test_limits.py, tests/gateway/test_limits.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from nexus.kit.config import Settings
from nexus.kit.errors import ResourceExhausted
from nexus.kit.ratelimit import CLIENT_ADDRESS_KEY, AttemptLimiter, Buckets, ClientAddresses, peer_ip


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_its_burst_then_one_per_refill_and_says_how_long_to_wait() -> None:
    clock = Clock()
    buckets = Buckets(burst=3, per_second=0.5, max_keys=10, clock=clock)
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a") == pytest.approx(2.0)
    assert buckets.take("b") == 0.0  # another key has its own bucket
    clock.now += 2.0
    assert buckets.take("a") == 0.0
    assert buckets.take("a") == pytest.approx(2.0)
    clock.now += 3600
    assert [buckets.take("a") for _ in range(4)][-1] > 0  # refills up to the burst, no further


def test_a_given_back_token_can_be_taken_again() -> None:
    buckets = Buckets(burst=1, per_second=0.001, max_keys=10, clock=Clock())
    assert buckets.take("a") == 0.0
    buckets.give_back("a")
    assert buckets.take("a") == 0.0
    assert buckets.take("a") > 0


def test_memory_is_bounded_and_the_least_recently_used_bucket_is_forgotten() -> None:
    buckets = Buckets(burst=1, per_second=0.001, max_keys=100, clock=Clock())
    buckets.take("hammered")
    for i in range(99):
        buckets.take(f"other-{i}")
    assert buckets.take("hammered") > 0  # still remembered: used again, so now the newest
    for i in range(1000):
        buckets.take(f"flood-{i}")
    assert len(buckets) == 100


def test_a_limiter_rejects_with_a_wait_and_takes_nothing_from_the_other_limit() -> None:
    clock = Clock()
    settings = Settings(auth_address_burst=5, auth_account_burst=1, auth_account_per_minute=6)
    limiter = AttemptLimiter(settings, clock=clock)
    limiter.admit(address="10.0.0.1", account="a@example.com")
    with pytest.raises(ResourceExhausted) as caught:
        limiter.admit(address="10.0.0.1", account="a@example.com")
    assert (caught.value.reason, caught.value.metadata) == ("RATE_LIMITED", {"limit": "account"})
    assert caught.value.retry_after_s == pytest.approx(10.0)
    # The refused attempt gave its address token back: four more accounts fit in the burst.
    for i in range(4):
        limiter.admit(address="10.0.0.1", account=f"{i}@example.com")
    with pytest.raises(ResourceExhausted) as caught:
        limiter.admit(address="10.0.0.1", account="new@example.com")
    assert caught.value.metadata == {"limit": "client_address"}


def test_a_refunded_admission_costs_nothing() -> None:
    limiter = AttemptLimiter(Settings(auth_address_burst=1, auth_account_burst=1), clock=Clock())
    for _ in range(10):
        limiter.admit(address="10.0.0.1", account="a@example.com").refund()


@pytest.mark.parametrize(
    ("peer", "ip"),
    [
        ("ipv4:127.0.0.1:36428", "127.0.0.1"),
        ("ipv6:%5B::1%5D:53624", "::1"),
        ("ipv6:[2001:db8::7]:443", "2001:db8::7"),
        ("ipv6:%5B::ffff:10.1.2.3%5D:80", "10.1.2.3"),
        ("unix:/tmp/socket", None),
        ("", None),
        ("ipv4:nonsense:1", None),
    ],
)
def test_peer_strings_as_grpc_reports_them(peer: str, ip: str | None) -> None:
    parsed = peer_ip(peer)
    assert (str(parsed) if parsed else None) == ip


@dataclass
class FakeCall:
    """The two things ClientAddresses reads of a servicer context."""

    peer_: str
    metadata: list[tuple[str, str]] = field(default_factory=list)

    def peer(self) -> str:
        return self.peer_

    def invocation_metadata(self) -> list[tuple[str, str]]:
        return self.metadata


def test_only_a_trusted_relay_is_believed_about_its_client_and_it_is_no_address_itself() -> None:
    addresses = ClientAddresses(["10.9.0.0/16"])
    forwarded = [(CLIENT_ADDRESS_KEY, "203.0.113.5")]
    assert addresses.of(FakeCall("ipv4:10.9.1.1:5000", forwarded)) == "203.0.113.5"
    assert addresses.of(FakeCall("ipv4:10.9.1.1:5000")) is None
    assert addresses.of(FakeCall("ipv4:10.9.1.1:5000", [(CLIENT_ADDRESS_KEY, "not an ip")])) is None
    # Anyone else claiming a client address is simply its own address.
    assert addresses.of(FakeCall("ipv4:198.51.100.7:5000", forwarded)) == "198.51.100.7"
    # IPv6 clients count per /64, which one holder usually controls whole.
    assert addresses.of(FakeCall("ipv6:%5B2001:db8:1:2:aaaa::1%5D:5")) == "2001:db8:1:2::/64"
    assert addresses.of(FakeCall("unix:/run/nexus.sock")) == "unix"
