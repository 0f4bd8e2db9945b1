"""Alembic, one history per service under `migrations/<service>/`, each with its version table
inside the service's own schema and run as the service's own role (so the role owns its tables)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from nexus.kit.config import SCHEMAS, Settings
from nexus.kit.postgres import service_url

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def alembic_config(settings: Settings, service: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR / service))
    # Passed as an attribute, not an option: ConfigParser would choke on '%' in a password.
    config.attributes["url"] = service_url(settings, service)
    config.attributes["schema"] = SCHEMAS[service]
    return config


def upgrade(settings: Settings, service: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(settings, service), revision)


def downgrade(settings: Settings, service: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(settings, service), revision)


def upgrade_all(settings: Settings) -> None:
    for service in SCHEMAS:
        upgrade(settings, service)


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
