"""Generated code is produced by one command and committed; these prove it is fresh and linted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# google.protobuf and gRPC stubs, Connect stubs, protobuf-py classes.
GENERATED = ("*_pb2*", "*_connect.py", "*_pb.py")


def test_committed_generated_code_matches_the_protos(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_protos.py"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    fresh = {p.relative_to(tmp_path): p.read_bytes() for pattern in GENERATED for p in tmp_path.rglob(pattern)}
    # Bytecode caches of the generated modules are not generated code.
    committed = {
        p.relative_to(ROOT): p.read_bytes()
        for pattern in GENERATED
        for p in (ROOT / "nexus").rglob(pattern)
        if "__pycache__" not in p.parts
    }
    assert fresh, "no protos were generated"
    stale = sorted(str(p) for p in fresh.keys() | committed.keys() if fresh.get(p) != committed.get(p))
    assert not stale, f"run `make protos`: stale or missing generated files {stale}"


def test_buf_lint_passes() -> None:
    result = subprocess.run([str(BIN / "buf"), "lint"], cwd=ROOT / "protos", capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
