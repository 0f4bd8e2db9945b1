"""docker-compose.yml and the Dockerfile: valid, complete, and wired to commands that exist."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from launch.cli import build_parser
from nexus.kit import config
from nexus.kit.ratelimit import ClientAddresses, parse_ip
from worker.options import REQUIRED_SCOPES as WORKER_SCOPES

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = shutil.which("docker-compose")
# Debian's docker-compose depends on python3-yaml, so the system Python can read its output.
SYSTEM_PYTHON = "/usr/bin/python3"

pytestmark = pytest.mark.skipif(
    COMPOSE is None, reason="docker-compose is not installed (`make test` installs Debian's package when it can)"
)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    assert COMPOSE is not None
    rendered = subprocess.run(
        [COMPOSE, "-f", str(ROOT / "docker-compose.yml"), "config"], capture_output=True, text=True, check=True
    ).stdout
    as_json = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)"],
        input=rendered,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    parsed: dict[str, Any] = json.loads(as_json)
    return parsed


def test_compose_file_validates() -> None:
    assert COMPOSE is not None
    result = subprocess.run([COMPOSE, "-f", str(ROOT / "docker-compose.yml"), "config", "-q"], capture_output=True)
    assert result.returncode == 0, result.stderr


def test_postgres_15_init_job_services_gateway_and_worker_each_with_a_health_check(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"postgres", "init", "user", "ontology", "runtime", "gateway", "worker"}
    assert services["postgres"]["image"] == "postgres:15"
    assert services["init"]["restart"] == "no"
    for name, service in services.items():
        if name != "init":
            assert "healthcheck" in service, f"{name} has no health check"
    for name in ("user", "ontology", "runtime"):
        assert services[name]["depends_on"]["init"]["condition"] == "service_completed_successfully"


def test_each_service_container_sees_only_its_own_database_url(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("user", "ontology", "runtime"):
        env = services[name]["environment"]
        urls = {key for key in env if key.endswith("DATABASE_URL")}
        assert urls == {f"NEXUS_{name.upper()}_DATABASE_URL"}, name
        assert env[f"NEXUS_{name.upper()}_DATABASE_URL"].startswith(f"postgresql://nexus_{name}:")
    for name in ("gateway", "worker"):
        assert not any(key.endswith("DATABASE_URL") for key in services[name].get("environment", {}))
    signing_key_holders = {n for n, s in services.items() if any("keys:/data/keys" in v for v in s.get("volumes", []))}
    assert signing_key_holders == {"init", "user"}


def test_every_container_command_is_a_real_nexus_command(compose: dict[str, Any]) -> None:
    parser = build_parser()
    commands = [["init"], ["worker"], compose["services"]["worker"]["healthcheck"]["test"][2:]]
    for name in ("user", "ontology", "runtime", "gateway"):
        command = compose["services"][name]["command"]
        assert command == ["serve", name]
        commands.append(command)
        commands.append(["health", "127.0.0.1:1"])
    for argv in commands:
        parser.parse_args(argv)  # exits (SystemExit) on an unknown command


def test_the_init_job_mints_the_worker_token_with_exactly_the_scopes_nexus_up_gives_it(compose: dict[str, Any]) -> None:
    script = compose["services"]["init"]["command"][0]
    mint = shlex.split(script.split("&&")[1].split(">")[0])
    assert mint[:2] == ["nexus", "token"]
    args = build_parser().parse_args(mint[1:])
    assert sorted(args.scope) == sorted(WORKER_SCOPES)


def test_the_worker_is_probed_by_its_heartbeat(compose: dict[str, Any]) -> None:
    assert compose["services"]["worker"]["healthcheck"]["test"] == ["CMD", "nexus", "worker", "--check"]


def test_dockerfile_installs_the_pinned_runtime_and_runs_nexus() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "FROM python:3.11" in dockerfile
    assert "pip install -r requirements.lock" in dockerfile
    assert 'ENTRYPOINT ["nexus"]' in dockerfile
    # The image runs the installed wheel, never the source tree (tests/platform/test_wheel.py).
    assert "pip wheel" in dockerfile and "-e ." not in dockerfile
    assert "USER nexus" in dockerfile


def test_the_user_service_believes_the_gateway_on_the_compose_network_about_its_clients(
    compose: dict[str, Any],
) -> None:
    """Else the gateway's sign-ins, everyone's, would share one per-address limit."""
    relays = config.from_env(compose["services"]["user"]["environment"]).trusted_relays
    limits = ClientAddresses(relays)
    for docker_pool_address in ("172.17.0.5", "172.28.3.4", "192.168.16.2", "10.0.1.9"):
        ip = parse_ip(docker_pool_address)
        assert ip is not None and limits.is_relay(ip)
