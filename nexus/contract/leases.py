"""Lease bounds: what the runtime grants and what a worker may ask for."""

from __future__ import annotations

MIN_LEASE_S = 0.1
MAX_LEASE_S = 3600.0
DEFAULT_LEASE_S = 30.0
# One claim takes at most this many tasks, for at most this many agents.
MAX_CLAIM = 100
MAX_CLAIM_AGENTS = 100


def lease_seconds(requested: float) -> float | None:
    """The lease length for a requested one (0 = default), or None when out of range."""
    if requested == 0:
        return DEFAULT_LEASE_S
    if not MIN_LEASE_S <= requested <= MAX_LEASE_S:
        return None
    return requested
