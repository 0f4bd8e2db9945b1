"""`nexus token mint` as a process: it refuses an unknown scope, a lifetime that is not positive and
an empty subject (exit 2, saying why), lists every scope with what it opens in --help, and mints
tokens the services accept. The scopes come from the services' specs, not from the command."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from launch.registry import SCOPES, SERVICES
from nexus.kit.tokens import LocalKeySet, TokenVerifier, ensure_signing_key
from tests.support import NEXUS_COMMAND
from worker.options import REQUIRED_SCOPES as WORKER_SCOPES


def mint(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("NEXUS_")}
    return subprocess.run(
        [*NEXUS_COMMAND, "--data-dir", str(data_dir), "token", "mint", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


@pytest.fixture
def keyed(tmp_path: Path) -> Path:
    """A data dir with a signing key, as `nexus up` leaves it."""
    ensure_signing_key(tmp_path / "keys" / "signing")
    return tmp_path


@pytest.mark.parametrize(
    ("args", "why"),
    [
        (["--subject", "w", "--scope", "runtime.wrker"], "unknown scope 'runtime.wrker' (did you mean runtime.worker"),
        (["--subject", "w", "--scope", "admin"], "unknown scope 'admin'"),
        (["--subject", "w", "--scope", "runtime.worker", "--ttl", "-60"], "the lifetime must be a whole number"),
        (["--subject", "w", "--ttl", "0"], "at least 1"),
        (["--subject", "w", "--ttl", "1.5"], "a whole number of seconds"),
        (["--subject", "", "--scope", "runtime.worker"], "the subject must not be empty"),
        (["--subject", "service:", "--scope", "runtime.worker"], "the subject must not be empty"),
        (["--subject", "two words"], "without spaces"),
    ],
)
def test_a_bad_scope_lifetime_or_subject_is_refused_with_exit_2_and_the_reason(
    keyed: Path, args: list[str], why: str
) -> None:
    done = mint(keyed, *args)
    assert done.returncode == 2, done.stdout
    assert done.stdout == ""  # no token
    assert why in done.stderr


def test_help_lists_every_scope_the_services_declare_with_what_it_opens(keyed: Path) -> None:
    done = mint(keyed, "--help")
    assert done.returncode == 0
    lines = done.stdout.splitlines()
    for scope in SCOPES.values():
        assert any(line.split() == [scope.name, *scope.description.split()] for line in lines), scope.name
    assert set(SCOPES) == {
        "user.admin",
        "user.profiles.read",
        "user.connections.reveal",
        "user.connections.verify",
        "user.audit.read",
        "ontology.admin",
        "ontology.read",
        "runtime.worker",
    }


def test_each_scope_belongs_to_the_service_that_declares_it_and_the_workers_are_known() -> None:
    for spec in SERVICES:
        assert all(scope.name.startswith(f"{spec.name}.") for scope in spec.scopes)
    assert set(WORKER_SCOPES) <= set(SCOPES)


async def test_a_minted_token_carries_its_subject_scopes_and_lifetime(keyed: Path) -> None:
    done = mint(keyed, "--subject", "ops", "--scope", "user.audit.read", "--scope", "ontology.read", "--ttl", "600")
    assert done.returncode == 0, done.stderr
    verifier = TokenVerifier(LocalKeySet(keyed / "keys" / "signing"), issuer="nexus", audience="nexus")
    principal = await verifier.verify(done.stdout.strip())
    assert principal.subject == "service:ops" and principal.kind == "service"
    assert principal.scopes == {"user.audit.read", "ontology.read"}
    assert 0 < principal.expires_at - time.time() <= 600
