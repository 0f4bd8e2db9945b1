"""Rate limits for attempts that cost a password hash (sign-in, sign-up; DESIGN §5).

Token buckets per client address and per account, checked before any hashing, so a flood is
turned away for the price of a dict lookup instead of filling the hashing slots for everyone.
Memory is bounded: each limit keeps at most `auth_limiter_keys` buckets and forgets the least
recently used one. A forgotten bucket reads as full, so forgetting costs at most one burst, and
evicting a bucket that is being hammered needs that many other keys to be used after it.

Who "the client address" is: the peer of the call, except that a trusted relay (a gateway,
`NEXUS_TRUSTED_RELAYS`) forwards its client's address in `x-nexus-client-address`, and its own
traffic is not one address. Metadata from any other peer is ignored: anyone can send it.
"""

from __future__ import annotations

import hashlib
import ipaddress
import time
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from nexus.kit.config import ConfigError, Settings
from nexus.kit.errors import ResourceExhausted

CLIENT_ADDRESS_KEY = "x-nexus-client-address"
# One IPv6 holder usually controls a whole /64: limiting single addresses would let it rotate.
IPV6_PREFIX = 64


class Buckets:
    """One token bucket per key: `burst` tokens at most, refilled at `per_second`."""

    def __init__(
        self, burst: int, per_second: float, max_keys: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if burst < 1 or per_second <= 0 or max_keys < 1:
            raise ConfigError("a rate limit needs a burst of at least 1, a positive rate and room for one key")
        self._burst = float(burst)
        self._rate = per_second
        self._max_keys = max_keys
        self._clock = clock
        # key -> (tokens, when they were counted); oldest use first.
        self._buckets: OrderedDict[Any, tuple[float, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: Any) -> float:
        """Takes a token: 0.0 when there was one, else the seconds until there will be."""
        now = self._clock()
        entry = self._buckets.pop(key, None)
        tokens = self._burst if entry is None else min(self._burst, entry[0] + (now - entry[1]) * self._rate)
        wait = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = (1 - tokens) / self._rate
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        return wait

    def give_back(self, key: Any) -> None:
        """Returns the token of an attempt that turned out legitimate."""
        entry = self._buckets.get(key)
        if entry is not None:
            self._buckets[key] = (min(self._burst, entry[0] + 1), entry[1])


class Admission:
    """An admitted attempt; `refund()` once it succeeded, so a user who signs in often (or many
    users behind one address) are not throttled by their own successes."""

    def __init__(self, taken: list[tuple[Buckets, Any]]) -> None:
        self._taken = taken

    def refund(self) -> None:
        for buckets, key in self._taken:
            buckets.give_back(key)
        self._taken = []


class AttemptLimiter:
    """The per-address and per-account limits of one kind of attempt (e.g. sign-in)."""

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.monotonic) -> None:
        keys = settings.auth_limiter_keys
        self._by_address = Buckets(settings.auth_address_burst, settings.auth_address_per_minute / 60, keys, clock)
        self._by_account = Buckets(settings.auth_account_burst, settings.auth_account_per_minute / 60, keys, clock)

    def admit(self, *, address: str | None, account: str | None) -> Admission:
        """Takes a token from each limit that applies (None: that limit does not apply), or
        raises RESOURCE_EXHAUSTED with RetryInfo and takes nothing."""
        taken: list[tuple[Buckets, Any]] = []
        for buckets, key, limit in (
            (self._by_address, address, "client_address"),
            # Hashed: a bucket's memory does not grow with the length of what was typed.
            (self._by_account, None if account is None else _digest(account), "account"),
        ):
            if key is None:
                continue
            wait = buckets.take(key)
            if wait:
                Admission(taken).refund()
                raise ResourceExhausted(
                    "too many attempts; wait before trying again",
                    reason="RATE_LIMITED",
                    metadata={"limit": limit},
                    retry_after_s=wait,
                )
            taken.append((buckets, key))
        return Admission(taken)


def _digest(value: str) -> bytes:
    return hashlib.blake2b(value.encode(), digest_size=16).digest()


# -- client addresses ------------------------------------------------------------------------


IP = ipaddress.IPv4Address | ipaddress.IPv6Address


def peer_ip(peer: str) -> IP | None:
    """The IP of a gRPC peer string (`ipv4:1.2.3.4:5`, `ipv6:%5B::1%5D:5`), else None. An
    IPv4-mapped IPv6 address (a dual-stack socket) is its IPv4 address."""
    scheme, _, rest = peer.partition(":")
    if scheme not in ("ipv4", "ipv6"):
        return None
    return parse_ip(urllib.parse.unquote(rest).rsplit(":", 1)[0].strip("[]"))


def parse_ip(text: str) -> IP | None:
    try:
        ip = ipaddress.ip_address(text.split("%", 1)[0])  # without an IPv6 zone (`%eth0`)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def limit_key(ip: IP) -> str:
    """What one client address counts as: the address, or its /64 for IPv6."""
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.ip_network(f"{ip}/{IPV6_PREFIX}", strict=False))
    return str(ip)


def _metadata_value(context: Any, key: str) -> str | None:
    for name, value in context.invocation_metadata() or ():
        if name == key and isinstance(value, str):
            return value
    return None


class ClientAddresses:
    """The client address of a call, as the per-address limit sees it."""

    def __init__(self, trusted_relays: Iterable[str]) -> None:
        self._relays = [ipaddress.ip_network(network, strict=False) for network in trusted_relays]

    def is_relay(self, ip: IP) -> bool:
        return any(ip.version == net.version and ip in net for net in self._relays)

    def of(self, context: Any) -> str | None:
        """The peer's address; for a trusted relay, the address it forwards (None without one:
        a relay's own traffic is many clients, not one address). A call whose peer has no IP
        (a unix socket) counts as one address named by its transport."""
        peer = str(context.peer() or "")
        ip = peer_ip(peer)
        if ip is None:
            return peer.partition(":")[0] or "unknown"
        if not self.is_relay(ip):
            return limit_key(ip)
        forwarded = parse_ip(_metadata_value(context, CLIENT_ADDRESS_KEY) or "")
        return None if forwarded is None else limit_key(forwarded)


def forwarded_address(context: Any) -> tuple[tuple[str, str], ...]:
    """Metadata a relay adds to a downstream call: its own caller's address (nothing when the
    caller's address is not an IP)."""
    ip = peer_ip(str(context.peer() or ""))
    return () if ip is None else ((CLIENT_ADDRESS_KEY, str(ip)),)
