"""The worker's own settings: `NEXUS_WORKER_*` environment variables, overridden by the flags of
`nexus worker`. The connection settings (addresses, TLS, the service token in NEXUS_TOKEN) are the
kit's."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from nexus.contract.leases import MAX_LEASE_S, MIN_LEASE_S
from nexus.kit.config import ConfigError
from worker.agents import catalog_agents

# What the worker's service token must carry: it drives tasks (runtime.worker) and reads the skill
# of a task that reaches it without a plan, which may be its owner's private skill (ontology.read:
# reads every skill and team, writes nothing).
REQUIRED_SCOPES = ("runtime.worker", "ontology.read")


@dataclass(frozen=True)
class Options:
    # The agents to work for; empty means the ones it implements, the seed catalog's (worker.agents).
    agents: tuple[str, ...] = ()
    # Tasks driven at once.
    concurrency: int = 4
    # Lease length; the worker renews at a third of it.
    lease_s: float = 30.0
    # How often an idle worker asks for work.
    poll_s: float = 0.5
    # A pause after each step's effect, before the step is marked done (demos and tests).
    step_delay_s: float = 0.0
    # On SIGTERM/SIGINT: how long in-flight steps may take to finish before they are cut off.
    grace_s: float = 5.0
    # The liveness file; default `<data dir>/worker.heartbeat`.
    heartbeat_file: Path | None = None

    def with_overrides(self, **changes: object) -> Options:
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})  # type: ignore[arg-type]

    def validate(self) -> Options:
        """These options checked, with the agent list resolved (the catalog's when none is given)."""
        if self.concurrency < 1:
            raise ConfigError("the worker's concurrency must be at least 1")
        if not MIN_LEASE_S <= self.lease_s <= MAX_LEASE_S:
            raise ConfigError(f"the lease must be from {MIN_LEASE_S} to {MAX_LEASE_S:.0f} seconds")
        if self.poll_s <= 0 or self.step_delay_s < 0 or self.grace_s < 0:
            raise ConfigError("poll must be positive; step delay and grace must not be negative")
        if self.agents:
            return self
        implemented = catalog_agents()
        if not implemented:
            raise ConfigError("the catalog has no agent the reference worker implements; name some with --agent")
        return dataclasses.replace(self, agents=implemented)


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None


def from_env(env: Mapping[str, str] | None = None) -> Options:
    env = os.environ if env is None else env
    defaults = Options()
    agents = tuple(a.strip() for a in env.get("NEXUS_WORKER_AGENTS", "").split(",") if a.strip())
    concurrency = _number(env, "NEXUS_WORKER_CONCURRENCY", defaults.concurrency)
    if not float(concurrency).is_integer():
        raise ConfigError("NEXUS_WORKER_CONCURRENCY must be a whole number")
    heartbeat = env.get("NEXUS_WORKER_HEARTBEAT_FILE")
    return Options(
        agents=agents,
        concurrency=int(concurrency),
        lease_s=_number(env, "NEXUS_WORKER_LEASE_S", defaults.lease_s),
        poll_s=_number(env, "NEXUS_WORKER_POLL_S", defaults.poll_s),
        step_delay_s=_number(env, "NEXUS_WORKER_STEP_DELAY_S", defaults.step_delay_s),
        grace_s=_number(env, "NEXUS_WORKER_GRACE_S", defaults.grace_s),
        heartbeat_file=Path(heartbeat) if heartbeat else None,
    )
