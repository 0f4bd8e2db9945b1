"""What a service tells the kit about itself.

Each service package exports one `ServiceSpec` (in its `spec.py`); the composition root lists
them (`launch/registry.py`). The kit takes specs and names no service: configuration reads each
spec's port, bootstrap creates each owned schema with its extensions, migrations run each
history, the server builds what `build` returns, and `nexus token mint` offers the scopes the
specs declare (and refuses any other).

A spec module stays light: `build` and `prepare_local` import the service's own modules when they
are called, so a command that only needs names and ports (`nexus health`, `nexus token mint`)
does not load every service.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nexus.kit.config import Settings
    from nexus.kit.server import Resources, ServiceDefinition


@dataclass(frozen=True)
class Scope:
    """A service-token scope a service honours, and what it opens (one line, for `--help`)."""

    name: str
    description: str


@dataclass(frozen=True)
class ServiceSpec:
    # The service's name in settings, environment variables (`NEXUS_<NAME>_PORT`) and logs.
    name: str
    default_port: int
    build: Callable[[Resources], Awaitable[ServiceDefinition]]
    # The one schema the service owns, or None for a service without a database (the gateway).
    schema: str | None = None
    # Extensions the admin creates into the schema (the service's role cannot).
    extensions: tuple[str, ...] = ()
    # The service's Alembic history (script location); required with a schema.
    migrations: Path | None = None
    # First-run set-up on a single machine (`nexus up`, `nexus init`), after migrations.
    prepare_local: Callable[[Settings], Awaitable[None]] | None = None
    # The service-token scopes the service checks, each named `<name>.…`.
    scopes: tuple[Scope, ...] = ()

    def __post_init__(self) -> None:
        if (self.schema is None) != (self.migrations is None):
            raise ValueError(f"service {self.name!r}: a schema and a migration history go together")
        for scope in self.scopes:
            if not scope.name.startswith(f"{self.name}."):
                raise ValueError(f"service {self.name!r}: scope {scope.name!r} must start with {self.name + '.'!r}")

    @property
    def env_name(self) -> str:
        return self.name.upper()
