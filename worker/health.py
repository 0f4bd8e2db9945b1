"""The worker's liveness signal. It serves no port, so its loop writes a heartbeat file (in the
data dir by default) and `nexus worker --check` reads it: healthy while the loop is turning AND
the runtime answered recently (a claim or a lease renewal). A worker whose event loop is stuck,
or that cannot reach the runtime, goes stale and its container is restarted."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

FILE_NAME = "worker.heartbeat"


def default_path(data_dir: Path) -> Path:
    return data_dir / FILE_NAME


@dataclass(frozen=True)
class Beat:
    pid: int
    # Wall-clock seconds: when the loop last turned, and when the runtime last answered it.
    time: float
    runtime_ok: float
    # How old a beat may get before the worker counts as unhealthy; the worker chooses it from
    # its own poll interval and lease, so the probe needs no flags.
    max_age_s: float
    in_flight: int = 0


def write(path: Path, beat: Beat) -> None:
    """Atomically (write, then rename): a probe never reads half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(beat.__dict__))
    tmp.replace(path)


def read(path: Path) -> Beat | None:
    try:
        return Beat(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def check(path: Path, *, max_age_s: float | None = None, now: float | None = None) -> tuple[bool, str]:
    """(healthy, why) for the probe."""
    beat = read(path)
    if beat is None:
        return False, f"no heartbeat in {path} (the worker is not running, or has not reached the runtime yet)"
    now = time.time() if now is None else now
    limit = beat.max_age_s if max_age_s is None else max_age_s
    if now - beat.time > limit:
        return False, f"the worker's loop last turned {now - beat.time:.0f}s ago (limit {limit:.0f}s)"
    if now - beat.runtime_ok > limit:
        return False, f"the runtime last answered the worker {now - beat.runtime_ok:.0f}s ago (limit {limit:.0f}s)"
    return True, f"healthy: pid {beat.pid}, tasks in flight: {beat.in_flight}"


def remove(path: Path) -> None:
    path.unlink(missing_ok=True)
