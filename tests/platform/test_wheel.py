"""A real install: the wheel, built from the tree and installed into a fresh venv, runs the whole
platform from outside the repository (migrations and the catalog come from inside the wheel)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import pytest

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", ".nexus", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "tests"
)


def _run(
    *args: str | Path, timeout: float = 300, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env, check=False
    )
    assert done.returncode == 0, f"{args[0]} exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the locked dependencies and the project's wheel, nothing else."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCE)
    _run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", source, "-w", work / "dist")
    (wheel,) = (work / "dist").glob("nexus-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "catalog/catalog.toml" in names and "migrations/runtime/versions/0001_tasks_and_events.py" in names
    assert {"gateway/http/console/index.html", "gateway/http/console/app.js", "gateway/http/console/styles.css"} <= set(
        names
    )
    venv = work / "venv"
    _run(sys.executable, "-m", "venv", venv)
    _run(
        venv / "bin" / "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "-r",
        ROOT / "requirements.lock",
        wheel,
    )
    return venv


def _outside_env(home: Path) -> dict[str, str]:
    """This process's environment without anything that points back into the repository."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEXUS_", "PYTHON", "VIRTUAL_ENV"))}
    ports = {name: free_port() for name in ("GATEWAY", "USER", "ONTOLOGY", "RUNTIME")}
    ports["GATEWAY_HTTP"] = free_port()
    return {**env, "HOME": str(home), **{f"NEXUS_{name}_PORT": str(port) for name, port in ports.items()}}


def _wait_for_line(process: subprocess.Popen[str], text: str, timeout_s: float) -> list[str]:
    assert process.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            break
        seen.append(line)
        if text in line:
            return seen
    raise AssertionError(f"no {text!r} within {timeout_s:.0f}s; output:\n{''.join(seen)[-3000:]}")


@pytest.mark.slow
def test_the_installed_wheel_runs_the_platform_and_a_command_from_outside_the_repository(
    installed: Path, tmp_path: Path
) -> None:
    nexus = installed / "bin" / "nexus"
    # The embedded Postgres runs as another user than root: its data dir must not be under pytest's
    # temp root, which every new pytest session on the machine resets to mode 0700.
    data = Path(tempfile.mkdtemp(prefix="nexus-wheel-"))
    env = _outside_env(tmp_path)
    where = _run(installed / "bin" / "python", "-c", "import launch; print(launch.__file__)", cwd=tmp_path, env=env)
    assert str(installed) in where.stdout and str(ROOT) not in where.stdout

    up = subprocess.Popen(
        [str(nexus), "--data-dir", str(data), "up"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        _wait_for_line(up, "Nexus is up", timeout_s=120)
        run = _run(
            nexus,
            "--data-dir",
            data,
            "run",
            "/scan https://example.com",
            "--answer",
            "pricing",
            cwd=tmp_path,
            env=env,
            timeout=120,
        )
        assert "the task finished" in run.stdout
    finally:
        up.send_signal(signal.SIGINT)
        out, _ = up.communicate(timeout=60)
        shutil.rmtree(data, ignore_errors=True)
    assert up.returncode == 0, out[-3000:]
    assert "stopped." in out
