"""What a service tells the platform about itself.

Each service package exports one `ServiceSpec` (its `spec.py`); the composition root lists them
(`launch/registry.py`). The kit takes specs and names no service: configuration reads each
spec's port, bootstrap creates each owned schema with its extensions, migrations run each
history (all three need only the `ServiceLayout` part), the server builds what `build`
returns, and `nexus token mint` offers the scopes the specs declare (and refuses any other).

A spec module stays light: `build` and `prepare_local` import the service's own modules when
called, so a command that needs only names and ports (`nexus health`, `nexus token mint`) does not
load every service, nor the server machinery.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nexus.kit.config import ServiceLayout

if TYPE_CHECKING:
    from nexus.kit.config import Settings
    from nexus.kit.server import Resources, ServiceDefinition


@dataclass(frozen=True)
class Scope:
    """A service-token scope a service honours, and what it opens (one line, for `--help`)."""

    name: str
    description: str


@dataclass(frozen=True, kw_only=True)
class ServiceSpec(ServiceLayout):
    build: Callable[[Resources], Awaitable[ServiceDefinition]]
    # First-run set-up on a single machine (`nexus up`, `nexus init`), after migrations.
    prepare_local: Callable[[Settings], Awaitable[None]] | None = None
    # The service-token scopes the service checks, each named `<name>.…`.
    scopes: tuple[Scope, ...] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        for scope in self.scopes:
            if not scope.name.startswith(f"{self.name}."):
                raise ValueError(f"service {self.name!r}: scope {scope.name!r} must start with {self.name + '.'!r}")
