"""Generate the Python code for every proto under protos/ — the one command behind `make protos`.

Three outputs, all committed (like dagster's stubs) so an install needs no protoc; a test
regenerates into a temporary directory and fails if the committed files differ:
- `nexus/<space>/v1/*_pb2*`: google.protobuf messages and gRPC stubs of every proto;
- `nexus/<space>/v1/*_connect.py`: Connect stubs (on google.protobuf) of the services the HTTP
  port serves (the gateway's);
- `nexus/protobuf_py/google/rpc/error_details_pb.py`: google.rpc's error details as protobuf-py
  classes, the protobuf runtime of the Connect library, so its error JSON carries them decoded.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
# The protos whose services are also served over Connect, on the HTTP port.
CONNECT_PROTOS = ("nexus/gateway/v1/gateway.proto",)
# Where protobuf-py classes go, and the protos they are made from (from googleapis-common-protos).
PROTOBUF_PY_DIR = Path("nexus") / "protobuf_py"
PROTOBUF_PY_PROTOS = ("google/rpc/error_details.proto",)


def proto_files() -> list[Path]:
    return sorted(PROTO_ROOT.rglob("*.proto"))


def _protoc(args: list[str]) -> None:
    if protoc.main(["grpc_tools.protoc", *args]) != 0:
        raise SystemExit("protoc failed")


def _packages(out_dir: Path, package_dir: Path) -> None:
    """Every directory on the way down is a regular package, so mypy and setuptools see it."""
    for parent in [package_dir, *package_dir.relative_to(out_dir).parents]:
        init = out_dir / parent / "__init__.py"
        if parent != Path(".") and not init.exists():
            init.write_text("")


def generate(out_dir: Path) -> list[Path]:
    """Writes every generated file under out_dir; returns the files written."""
    import google.rpc
    import grpc_tools

    wkt_include = Path(grpc_tools.__file__).parent / "_proto"
    files = [str(p.relative_to(PROTO_ROOT)) for p in proto_files()]
    plugin_dir = Path(sys.executable).parent
    args = [
        f"--proto_path={PROTO_ROOT}",
        f"--proto_path={wkt_include}",
        f"--plugin=protoc-gen-mypy={plugin_dir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={plugin_dir / 'protoc-gen-mypy_grpc'}",
        f"--python_out={out_dir}",
        f"--mypy_out=quiet:{out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--mypy_grpc_out=quiet:{out_dir}",
        *files,
    ]
    _protoc(args)
    _protoc(
        [
            f"--proto_path={PROTO_ROOT}",
            f"--proto_path={wkt_include}",
            f"--plugin=protoc-gen-connectrpc={plugin_dir / 'protoc-gen-connectrpc'}",
            f"--connectrpc_out=protobuf=google,io=async:{out_dir}",
            *CONNECT_PROTOS,
        ]
    )
    # googleapis-common-protos ships the .proto files beside its modules.
    common_protos = Path(next(iter(google.rpc.__path__))).parent.parent
    py_out = out_dir / PROTOBUF_PY_DIR
    py_out.mkdir(parents=True, exist_ok=True)
    _protoc(
        [
            f"--proto_path={common_protos}",
            f"--proto_path={wkt_include}",
            f"--plugin=protoc-gen-py={plugin_dir / 'protoc-gen-py'}",
            f"--py_out={py_out}",
            *PROTOBUF_PY_PROTOS,
        ]
    )
    written: list[Path] = []
    for proto in files:
        package_dir = out_dir / Path(proto).parent
        _packages(out_dir, package_dir)
        stem = Path(proto).stem
        written += sorted(package_dir.glob(f"{stem}_pb2*"))
        written += sorted(package_dir.glob(f"{stem}_connect.py"))
    for proto in PROTOBUF_PY_PROTOS:
        package_dir = py_out / Path(proto).parent
        _packages(out_dir, package_dir)
        written += sorted(package_dir.glob(f"{Path(proto).stem}_pb.py"))
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT, help="output root (default: the repository)")
    args = parser.parse_args()
    for path in generate(args.out):
        print(path.relative_to(args.out))


if __name__ == "__main__":
    main()
