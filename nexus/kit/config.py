"""Configuration: one frozen dataclass read from `NEXUS_*` environment variables.

Flags on the `nexus` command override the common ones by replacing fields (`dataclasses.replace`),
so every process sees one explicit value per setting. Per-service settings (ports, addresses, own
database URLs) are read for the services the caller names by their specs; the kit knows none.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

MiB = 1024 * 1024


@dataclass(frozen=True)
class ServiceLayout:
    """What configuration, bootstrap and migrations need to know of a service. A service's full
    description, with how to build it, is `nexus.kit.server.ServiceSpec`, which extends this."""

    # The service's name in settings, environment variables (`NEXUS_<NAME>_PORT`) and logs.
    name: str
    default_port: int
    # The one schema the service owns, or None for a service without a database (the gateway).
    schema: str | None = None
    # Extensions the admin creates into the schema (the service's role cannot).
    extensions: tuple[str, ...] = ()
    # The service's Alembic history (script location); required with a schema.
    migrations: Path | None = None
    # An HTTP port beside the gRPC one (the gateway's, for browsers), or None for none.
    default_http_port: int | None = None

    def __post_init__(self) -> None:
        if (self.schema is None) != (self.migrations is None):
            raise ValueError(f"service {self.name!r}: a schema and a migration history go together")

    @property
    def env_name(self) -> str:
        return self.name.upper()


class ConfigError(Exception):
    """A setting is missing or malformed; the process should not start."""


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path(".nexus")
    # Admin URL: bootstrap and migrations need it. None means the embedded server under data_dir.
    database_url: str | None = None
    # A service's own connection URL (NEXUS_<SERVICE>_DATABASE_URL). A container of one service
    # gets only this, never the admin URL; without it the URL derives from the admin URL.
    service_database_urls: Mapping[str, str] = field(default_factory=dict)
    database_name: str = "nexus"
    # Login roles are `<prefix><service>`; tests use a unique prefix per session.
    db_role_prefix: str = "nexus_"
    db_role_password: str | None = None
    db_pool_size: int = 10
    host: str = "127.0.0.1"
    # Listen ports by service name: each spec's default unless NEXUS_<SERVICE>_PORT says otherwise.
    ports: Mapping[str, int] = field(default_factory=dict)
    # Where peers are reached; defaults derive from host and ports.
    addresses: Mapping[str, str] = field(default_factory=dict)
    # HTTP ports by service name, for the services whose spec has one (NEXUS_<SERVICE>_HTTP_PORT).
    http_ports: Mapping[str, int] = field(default_factory=dict)
    # Origins (`https://app.example.com`) whose pages may call the HTTP ports; none by default.
    cors_origins: tuple[str, ...] = ()
    # The key that seals stream tickets, shared by every gateway replica; None: a key of this
    # process only (a ticket then opens streams on the replica that minted it).
    stream_ticket_key_file: Path | None = None
    # Where clients reach the gateway's A2A interfaces, as its agent cards announce them: the HTTP
    # port's base URL (`https://nexus.example.com`) and the gRPC port's `host:port`. Empty: the
    # gateway's own host and ports.
    a2a_public_url: str = ""
    a2a_grpc_address: str = ""
    # The agent that plain text sent to the platform's A2A interface (no tenant) talks to; empty:
    # such text is refused, and only slash commands run there.
    a2a_default_agent: str = ""
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    # Client side of TLS: the CA that signed the servers' certificates.
    tls_ca_file: Path | None = None
    signing_keys_dir: Path | None = None
    credential_keys_file: Path | None = None
    token_issuer: str = "nexus"
    token_audience: str = "nexus"
    access_token_ttl_s: int = 900
    refresh_token_ttl_s: int = 30 * 24 * 3600
    service_token: str | None = None
    shutdown_grace_s: float = 5.0
    # Admission (kit/admission.py): past these a server refuses a call at once with
    # RESOURCE_EXHAUSTED and RetryInfo, instead of queueing without bound. Unary calls and streams
    # have separate budgets, so long-lived streams never starve unary calls. gRPC core's own
    # backlog of calls not yet started is raised to max_pending_calls, far above the others:
    # core can only answer CANCELLED, so it must never be the one that refuses.
    max_inflight_calls: int = 1000
    max_open_streams: int = 10_000
    max_pending_calls: int = 20_000
    # The wait RetryInfo asks for when a call is refused for overload or shutdown.
    retry_after_s: float = 0.25
    max_message_bytes: int = 8 * MiB
    artifact_max_bytes: int = 100 * MiB
    # How often each runtime replica looks for due schedules (cron has minute resolution).
    scheduler_poll_s: float = 1.0
    # How often each runtime replica checks that its LISTEN connection still delivers (a silent
    # one is replaced within about twice this).
    listen_check_s: float = 2.0
    log_level: str = "INFO"
    # -- sign-in limits and revocations (services/user README, "Limits" and "Revocation") --------
    # Token buckets in front of password hashing, for SignIn and for SignUp each: per client
    # address and per account (email). `burst` attempts at once, refilled at `per_minute`.
    auth_address_burst: int = 20
    auth_address_per_minute: float = 30.0
    auth_account_burst: int = 10
    auth_account_per_minute: float = 6.0
    # Buckets kept per limit; past it the least recently used is forgotten (bounded memory).
    auth_limiter_keys: int = 50_000
    # Peers (IPs or CIDRs) that relay clients' sign-ins, i.e. the gateways: their own traffic is
    # not one "address", and only their `x-nexus-client-address` metadata is believed.
    trusted_relays: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
    # How often the user service reads revocations committed by its other replicas.
    revocation_poll_s: float = 0.5
    # How long a create's request_id is remembered (kit/idempotency.py): a retry within it
    # returns the first result; past it the entry is pruned and the id may be used again.
    request_id_ttl_s: float = 24 * 3600.0

    @property
    def embedded(self) -> bool:
        return self.database_url is None and not self.service_database_urls

    @property
    def keys_dir(self) -> Path:
        return self.data_dir / "keys"

    @property
    def resolved_signing_keys_dir(self) -> Path:
        return self.signing_keys_dir or self.keys_dir / "signing"

    @property
    def resolved_credential_keys_file(self) -> Path:
        return self.credential_keys_file or self.keys_dir / "credentials.keys"

    def port(self, service: str) -> int:
        return self.ports[service]

    def reaches(self, service: str) -> bool:
        """Whether these settings say where `service` is."""
        return service in self.addresses or service in self.ports

    def http_port(self, service: str) -> int:
        return self.http_ports[service]

    def address(self, service: str) -> str:
        return self.addresses.get(service) or f"{self.host}:{self.ports[service]}"

    def role(self, service: str) -> str:
        return f"{self.db_role_prefix}{service}"

    def with_overrides(self, **changes: object) -> Settings:
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})  # type: ignore[arg-type]


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None


def _path(env: Mapping[str, str], name: str) -> Path | None:
    raw = env.get(name)
    return Path(raw) if raw else None


def _networks(env: Mapping[str, str], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    raw = env.get(name)
    if raw is None:
        return default
    networks = tuple(part.strip() for part in raw.split(",") if part.strip())
    for network in networks:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise ConfigError(f"{name} must be comma-separated IP addresses or CIDRs, got {network!r}") from None
    return networks


def from_env(env: Mapping[str, str] | None = None, *, services: Iterable[ServiceLayout] = ()) -> Settings:
    """Reads every `NEXUS_*` variable, the per-service ones for `services`; unset ones keep their
    defaults."""
    env = os.environ if env is None else env
    services = list(services)
    ports = {spec.name: _int(env, f"NEXUS_{spec.env_name}_PORT", spec.default_port) for spec in services}
    addresses = {
        spec.name: env[f"NEXUS_{spec.env_name}_ADDR"] for spec in services if env.get(f"NEXUS_{spec.env_name}_ADDR")
    }
    http_ports = {
        spec.name: _int(env, f"NEXUS_{spec.env_name}_HTTP_PORT", spec.default_http_port)
        for spec in services
        if spec.default_http_port is not None
    }
    cors = tuple(
        origin.strip().rstrip("/") for origin in env.get("NEXUS_CORS_ORIGINS", "").split(",") if origin.strip()
    )
    return Settings(
        data_dir=Path(env.get("NEXUS_DATA_DIR") or ".nexus"),
        database_url=env.get("NEXUS_DATABASE_URL") or None,
        service_database_urls={
            spec.name: env[f"NEXUS_{spec.env_name}_DATABASE_URL"]
            for spec in services
            if spec.schema and env.get(f"NEXUS_{spec.env_name}_DATABASE_URL")
        },
        database_name=env.get("NEXUS_DATABASE_NAME") or "nexus",
        db_role_prefix=env.get("NEXUS_DB_ROLE_PREFIX") or "nexus_",
        db_role_password=env.get("NEXUS_DB_ROLE_PASSWORD") or None,
        db_pool_size=_int(env, "NEXUS_DB_POOL_SIZE", 10),
        host=env.get("NEXUS_HOST") or "127.0.0.1",
        ports=ports,
        addresses=addresses,
        http_ports=http_ports,
        cors_origins=cors,
        stream_ticket_key_file=_path(env, "NEXUS_STREAM_TICKET_KEY_FILE"),
        a2a_public_url=env.get("NEXUS_A2A_PUBLIC_URL") or "",
        a2a_grpc_address=env.get("NEXUS_A2A_GRPC_ADDRESS") or "",
        a2a_default_agent=env.get("NEXUS_A2A_DEFAULT_AGENT") or "",
        tls_cert_file=_path(env, "NEXUS_TLS_CERT"),
        tls_key_file=_path(env, "NEXUS_TLS_KEY"),
        tls_ca_file=_path(env, "NEXUS_TLS_CA"),
        signing_keys_dir=_path(env, "NEXUS_SIGNING_KEYS_DIR"),
        credential_keys_file=_path(env, "NEXUS_CREDENTIAL_KEYS_FILE"),
        token_issuer=env.get("NEXUS_TOKEN_ISSUER") or "nexus",
        token_audience=env.get("NEXUS_TOKEN_AUDIENCE") or "nexus",
        access_token_ttl_s=_int(env, "NEXUS_ACCESS_TOKEN_TTL", 900),
        refresh_token_ttl_s=_int(env, "NEXUS_REFRESH_TOKEN_TTL", 30 * 24 * 3600),
        service_token=env.get("NEXUS_TOKEN") or None,
        shutdown_grace_s=_float(env, "NEXUS_SHUTDOWN_GRACE", 5.0),
        max_inflight_calls=_int(env, "NEXUS_MAX_INFLIGHT_CALLS", 1000),
        max_open_streams=_int(env, "NEXUS_MAX_OPEN_STREAMS", 10_000),
        max_pending_calls=_int(env, "NEXUS_MAX_PENDING_CALLS", 20_000),
        retry_after_s=_float(env, "NEXUS_RETRY_AFTER_S", 0.25),
        max_message_bytes=_int(env, "NEXUS_MAX_MESSAGE_BYTES", 8 * MiB),
        artifact_max_bytes=_int(env, "NEXUS_ARTIFACT_MAX_BYTES", 100 * MiB),
        scheduler_poll_s=_float(env, "NEXUS_SCHEDULER_POLL_S", 1.0),
        listen_check_s=_float(env, "NEXUS_LISTEN_CHECK_S", 2.0),
        log_level=env.get("NEXUS_LOG_LEVEL") or "INFO",
        auth_address_burst=_int(env, "NEXUS_AUTH_ADDRESS_BURST", Settings.auth_address_burst),
        auth_address_per_minute=_float(env, "NEXUS_AUTH_ADDRESS_PER_MINUTE", Settings.auth_address_per_minute),
        auth_account_burst=_int(env, "NEXUS_AUTH_ACCOUNT_BURST", Settings.auth_account_burst),
        auth_account_per_minute=_float(env, "NEXUS_AUTH_ACCOUNT_PER_MINUTE", Settings.auth_account_per_minute),
        auth_limiter_keys=_int(env, "NEXUS_AUTH_LIMITER_KEYS", Settings.auth_limiter_keys),
        trusted_relays=_networks(env, "NEXUS_TRUSTED_RELAYS", Settings.trusted_relays),
        revocation_poll_s=_float(env, "NEXUS_REVOCATION_POLL_S", Settings.revocation_poll_s),
        request_id_ttl_s=_float(env, "NEXUS_REQUEST_ID_TTL_S", Settings.request_id_ttl_s),
    )


def to_env(settings: Settings) -> dict[str, str]:
    """The inverse of from_env, so `nexus up` can hand its exact settings to child processes."""
    env = {
        "NEXUS_DATA_DIR": str(settings.data_dir),
        "NEXUS_DATABASE_NAME": settings.database_name,
        "NEXUS_DB_ROLE_PREFIX": settings.db_role_prefix,
        "NEXUS_DB_POOL_SIZE": str(settings.db_pool_size),
        "NEXUS_HOST": settings.host,
        "NEXUS_TOKEN_ISSUER": settings.token_issuer,
        "NEXUS_TOKEN_AUDIENCE": settings.token_audience,
        "NEXUS_ACCESS_TOKEN_TTL": str(settings.access_token_ttl_s),
        "NEXUS_REFRESH_TOKEN_TTL": str(settings.refresh_token_ttl_s),
        "NEXUS_SHUTDOWN_GRACE": str(settings.shutdown_grace_s),
        "NEXUS_MAX_INFLIGHT_CALLS": str(settings.max_inflight_calls),
        "NEXUS_MAX_OPEN_STREAMS": str(settings.max_open_streams),
        "NEXUS_MAX_PENDING_CALLS": str(settings.max_pending_calls),
        "NEXUS_RETRY_AFTER_S": str(settings.retry_after_s),
        "NEXUS_MAX_MESSAGE_BYTES": str(settings.max_message_bytes),
        "NEXUS_ARTIFACT_MAX_BYTES": str(settings.artifact_max_bytes),
        "NEXUS_SCHEDULER_POLL_S": str(settings.scheduler_poll_s),
        "NEXUS_LISTEN_CHECK_S": str(settings.listen_check_s),
        "NEXUS_LOG_LEVEL": settings.log_level,
        "NEXUS_SIGNING_KEYS_DIR": str(settings.resolved_signing_keys_dir),
        "NEXUS_CREDENTIAL_KEYS_FILE": str(settings.resolved_credential_keys_file),
        "NEXUS_AUTH_ADDRESS_BURST": str(settings.auth_address_burst),
        "NEXUS_AUTH_ADDRESS_PER_MINUTE": str(settings.auth_address_per_minute),
        "NEXUS_AUTH_ACCOUNT_BURST": str(settings.auth_account_burst),
        "NEXUS_AUTH_ACCOUNT_PER_MINUTE": str(settings.auth_account_per_minute),
        "NEXUS_AUTH_LIMITER_KEYS": str(settings.auth_limiter_keys),
        "NEXUS_TRUSTED_RELAYS": ",".join(settings.trusted_relays),
        "NEXUS_REVOCATION_POLL_S": str(settings.revocation_poll_s),
        "NEXUS_REQUEST_ID_TTL_S": str(settings.request_id_ttl_s),
    }
    for name, port in settings.ports.items():
        env[f"NEXUS_{name.upper()}_PORT"] = str(port)
    for name, port in settings.http_ports.items():
        env[f"NEXUS_{name.upper()}_HTTP_PORT"] = str(port)
    if settings.cors_origins:
        env["NEXUS_CORS_ORIGINS"] = ",".join(settings.cors_origins)
    for name, addr in settings.addresses.items():
        env[f"NEXUS_{name.upper()}_ADDR"] = addr
    for name, url in settings.service_database_urls.items():
        env[f"NEXUS_{name.upper()}_DATABASE_URL"] = url
    optional = {
        "NEXUS_DATABASE_URL": settings.database_url,
        "NEXUS_DB_ROLE_PASSWORD": settings.db_role_password,
        "NEXUS_TLS_CERT": settings.tls_cert_file,
        "NEXUS_TLS_KEY": settings.tls_key_file,
        "NEXUS_TLS_CA": settings.tls_ca_file,
        "NEXUS_TOKEN": settings.service_token,
        "NEXUS_STREAM_TICKET_KEY_FILE": settings.stream_ticket_key_file,
        "NEXUS_A2A_PUBLIC_URL": settings.a2a_public_url or None,
        "NEXUS_A2A_GRPC_ADDRESS": settings.a2a_grpc_address or None,
        "NEXUS_A2A_DEFAULT_AGENT": settings.a2a_default_agent or None,
    }
    env.update({k: str(v) for k, v in optional.items() if v is not None})
    return env
