"""Configuration from NEXUS_* variables, and the database URL each service connects with."""

from __future__ import annotations

from pathlib import Path

import pytest

from launch.registry import SERVICES
from nexus.kit import config
from nexus.kit.postgres import role_password, service_url


def test_defaults_and_overrides_from_the_environment() -> None:
    settings = config.from_env(
        {"NEXUS_RUNTIME_PORT": "6000", "NEXUS_USER_ADDR": "user:50051", "NEXUS_HOST": "0.0.0.0"}, services=SERVICES
    )
    assert settings.embedded
    assert settings.port("runtime") == 6000
    assert settings.address("user") == "user:50051"
    assert settings.address("ontology") == "0.0.0.0:50052"
    assert settings.access_token_ttl_s == 900


def test_malformed_numbers_are_config_errors() -> None:
    with pytest.raises(config.ConfigError, match="NEXUS_DB_POOL_SIZE"):
        config.from_env({"NEXUS_DB_POOL_SIZE": "ten"}, services=SERVICES)


def test_to_env_round_trips_through_from_env(tmp_path: Path) -> None:
    settings = config.Settings(
        data_dir=tmp_path,
        database_url="postgresql://admin:pw@db:5432/postgres",
        service_database_urls={"user": "postgresql://nexus_user:u-pw@db/nexus"},
        ports={**{spec.name: spec.default_port for spec in SERVICES}, "gateway": 7000},
        service_token="tok",
        max_inflight_calls=7,
        max_open_streams=8,
        max_pending_calls=9,
        retry_after_s=1.5,
    )
    again = config.from_env(config.to_env(settings), services=SERVICES)
    assert (again.max_inflight_calls, again.max_open_streams, again.max_pending_calls) == (7, 8, 9)
    assert again.retry_after_s == 1.5
    assert again.database_url == settings.database_url
    assert dict(again.service_database_urls) == dict(settings.service_database_urls)
    assert again.port("gateway") == 7000
    assert again.service_token == "tok"
    assert again.resolved_signing_keys_dir == settings.resolved_signing_keys_dir


def test_a_service_connects_with_its_own_url_when_configured_else_derives_its_role() -> None:
    derived = config.from_env({"NEXUS_DATABASE_URL": "postgresql://admin:secret@db:5432/postgres"}, services=SERVICES)
    assert service_url(derived, "runtime") == "postgresql+psycopg://nexus_runtime@db:5432/nexus"
    own = config.from_env({"NEXUS_USER_DATABASE_URL": "postgresql://nexus_user:u-pw@db:5432/nexus"}, services=SERVICES)
    assert not own.embedded  # a service given only its own URL never starts an embedded server
    assert service_url(own, "user") == "postgresql+psycopg://nexus_user:u-pw@db:5432/nexus"
    assert role_password(own, "user") == "u-pw"
    assert role_password(own, "ontology") is None


def test_sign_in_limits_and_trusted_relays_round_trip_and_are_checked() -> None:
    settings = config.Settings(
        auth_address_burst=3, auth_account_per_minute=0.5, trusted_relays=("10.0.0.0/8", "::1"), revocation_poll_s=0.2
    )
    again = config.from_env(config.to_env(settings))
    assert (again.auth_address_burst, again.auth_account_per_minute) == (3, 0.5)
    assert again.trusted_relays == ("10.0.0.0/8", "::1")
    assert again.revocation_poll_s == 0.2
    assert config.from_env({"NEXUS_TRUSTED_RELAYS": ""}).trusted_relays == ()  # trust nobody
    assert config.from_env({}).trusted_relays == ("127.0.0.0/8", "::1/128")
    with pytest.raises(config.ConfigError, match="NEXUS_TRUSTED_RELAYS"):
        config.from_env({"NEXUS_TRUSTED_RELAYS": "10.0.0.0/8, gateway.internal"})
