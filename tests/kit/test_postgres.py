"""Bootstrap, role isolation, and the one mapping from database errors to gRPC codes."""

from __future__ import annotations

import psycopg
import pytest
import sqlalchemy.exc
from psycopg import errors as pg_errors

from launch.registry import OWNING
from nexus.kit import errors, postgres
from nexus.kit.config import Settings


def connect(settings: Settings, service: str) -> psycopg.Connection:
    return psycopg.connect(postgres.service_url(settings, service, driver="postgresql"), autocommit=True)


def test_each_service_role_can_use_only_its_own_schema(scratch_settings: Settings) -> None:
    with connect(scratch_settings, "ontology") as ontology:
        ontology.execute("CREATE TABLE ontology.probe (id int)")
        ontology.execute("INSERT INTO ontology.probe VALUES (1)")
    with connect(scratch_settings, "user") as user:
        with pytest.raises(pg_errors.InsufficientPrivilege):
            user.execute("SELECT * FROM ontology.probe")
        with pytest.raises(pg_errors.InsufficientPrivilege):
            user.execute("CREATE TABLE ontology.intruder (id int)")
        with pytest.raises(pg_errors.InsufficientPrivilege):
            user.execute("CREATE TABLE public.anywhere (id int)")
        user.execute("CREATE TABLE users.mine (id int)")  # its own schema works
        assert user.execute("SHOW search_path").fetchone() == ("users",)
    with connect(scratch_settings, "runtime") as runtime, pytest.raises(pg_errors.InsufficientPrivilege):
        runtime.execute("SELECT * FROM users.mine")


def test_bootstrap_is_idempotent(scratch_settings: Settings) -> None:
    postgres.bootstrap(scratch_settings, OWNING)
    with connect(scratch_settings, "user") as user:
        schemas = {row[0] for row in user.execute("SELECT nspname FROM pg_namespace")}
    assert {spec.schema for spec in OWNING} <= schemas


def test_runtime_schema_has_trigram_search_that_understands_chinese(scratch_settings: Settings) -> None:
    with connect(scratch_settings, "runtime") as runtime:
        row = runtime.execute("SELECT similarity('数据库性能优化', '性能优化'), show_trgm('数据库')").fetchone()
    assert row is not None and row[0] > 0.2 and len(row[1]) > 0


@pytest.mark.parametrize(
    ("statement", "params", "expected", "reason"),
    [
        ("INSERT INTO users.probe VALUES (1, 'a')", None, errors.AlreadyExists, "ALREADY_EXISTS"),
        ("INSERT INTO users.probe VALUES (2, %s)", ["a\x00b"], errors.InvalidArgument, "INVALID_VALUE"),
        ("INSERT INTO users.probe VALUES (3, %s)", ["x" * 20], errors.InvalidArgument, "INVALID_VALUE"),
        ("INSERT INTO users.probe VALUES ('nope', 'a')", None, errors.InvalidArgument, "INVALID_VALUE"),
        ("INSERT INTO users.probe VALUES (-1, 'b')", None, errors.InvalidArgument, "CHECK_VIOLATION"),
        ("INSERT INTO users.child VALUES (99)", None, errors.FailedPrecondition, "REFERENCE_VIOLATION"),
        ('SELECT \'{"a": "\\u0000"}\'::jsonb', None, errors.InvalidArgument, "INVALID_VALUE"),
        ("SET statement_timeout = 1; SELECT pg_sleep(1)", None, errors.DeadlineExceeded, "STATEMENT_TIMEOUT"),
    ],
)
def test_database_errors_map_to_canonical_codes(
    scratch_settings: Settings, statement: str, params: list[str] | None, expected: type, reason: str
) -> None:
    with connect(scratch_settings, "user") as user:
        user.execute("CREATE TABLE IF NOT EXISTS users.probe (id int PRIMARY KEY CHECK (id >= 0), name varchar(10))")
        user.execute("CREATE TABLE IF NOT EXISTS users.child (probe_id int REFERENCES users.probe (id))")
        user.execute("INSERT INTO users.probe VALUES (1, 'a') ON CONFLICT DO NOTHING")
        with pytest.raises(psycopg.Error) as raised:
            user.execute(statement, params)
    mapped = errors.from_database(raised.value)
    assert mapped is not None
    assert isinstance(mapped, expected)
    assert mapped.reason == reason
    # SQLAlchemy wraps driver errors; the mapping sees through the wrapper.
    wrapped = sqlalchemy.exc.DBAPIError(statement, params, raised.value)
    assert type(errors.from_database(wrapped)) is expected
    assert "x" * 20 not in mapped.message and "\x00" not in mapped.message


def test_unrelated_exceptions_are_not_database_errors() -> None:
    assert errors.from_database(ValueError("x")) is None
