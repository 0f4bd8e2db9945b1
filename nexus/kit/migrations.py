"""Alembic, one history per service (its spec says where), each with its version table inside the
service's own schema and run as the service's own role (so the role owns its tables)."""

from __future__ import annotations

from collections.abc import Iterable

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from nexus.kit.config import ServiceLayout, Settings
from nexus.kit.postgres import service_url


def alembic_config(settings: Settings, spec: ServiceLayout) -> Config:
    if spec.migrations is None or spec.schema is None:
        raise ValueError(f"service {spec.name!r} owns no schema and has no migrations")
    config = Config()
    config.set_main_option("script_location", str(spec.migrations))
    # Passed as an attribute, not an option: ConfigParser would choke on '%' in a password.
    config.attributes["url"] = service_url(settings, spec.name)
    config.attributes["schema"] = spec.schema
    return config


def upgrade(settings: Settings, spec: ServiceLayout, revision: str = "head") -> None:
    command.upgrade(alembic_config(settings, spec), revision)


def downgrade(settings: Settings, spec: ServiceLayout, revision: str = "base") -> None:
    command.downgrade(alembic_config(settings, spec), revision)


def upgrade_all(settings: Settings, services: Iterable[ServiceLayout]) -> None:
    for spec in services:
        if spec.schema:
            upgrade(settings, spec)


def run_env() -> None:
    """The body of every `migrations/<service>/env.py`."""
    from alembic import context

    url = context.config.attributes["url"]
    schema = context.config.attributes["schema"]
    engine = create_engine(url, poolclass=NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, version_table_schema=schema, target_metadata=None)
        with context.begin_transaction():
            context.run_migrations()
