"""A/B: one phase of `scripts/bench.py` against two runtimes running at once.

On a shared, noisy machine two benchmark runs minutes apart differ more than two versions do. This
starts a runtime (and its ontology) from this checkout and one from another checkout (`--other`,
e.g. `git archive <commit> | tar -x -C /tmp/base`), each on its own database, and alternates
rounds of one phase between them, so a noisy neighbour hits both alike. It prints each round and
the median of each side.

    NEXUS_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test \\
      .venv/bin/python scripts/bench_ab.py --other /tmp/base --phase latency --rounds 6
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench

from nexus.kit import config
from nexus.kit.auth import bearer_metadata
from nexus.kit.tokens import TokenSigner, ensure_signing_key
from nexus.runtime.v1 import runtime_pb2_grpc


def spawn(args: list[str], env: dict[str, str], tree: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        # The `nexus` command of that tree (`python -m launch`; `python -m nexus` before the
        # composition root moved out of nexus/).
        [sys.executable, "-m", "launch" if (tree / "launch").is_dir() else "nexus", *args],
        env=env,
        cwd=tree,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


async def start(stack: contextlib.AsyncExitStack, tree: Path) -> tuple[list[Any], Any]:
    """Ontology and runtime servers run from `tree` (their working directory comes first on
    their import path); returns stubs and a user's call metadata."""
    settings = await stack.enter_async_context(bench.database())
    env = {**os.environ, **config.to_env(settings)}
    key = ensure_signing_key(settings.resolved_signing_keys_dir)
    signer = TokenSigner(key, issuer=settings.token_issuer, audience=settings.token_audience)
    user = bearer_metadata(signer.mint(str(uuid.uuid4()), kind="user", scopes=[], ttl_s=3600))
    admin = bearer_metadata(signer.mint("service:bench", kind="service", scopes=["ontology.admin"], ttl_s=3600))
    port = bench.free_port()
    servers = []
    for args in (["serve", "ontology"], ["serve", "runtime", "--port", str(port)]):
        process = spawn(args, env, tree)
        stack.callback(bench.stop, process)
        servers.append(process)
    await bench.wait_ready(settings.address("ontology"), servers[0], health=True)
    await bench.create_agents(settings.address("ontology"), admin)
    await bench.wait_ready(f"127.0.0.1:{port}", servers[1], health=True)
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{port}") for _ in range(bench.CHANNELS)]
    for channel in channels:
        stack.push_async_callback(channel.close)
    return [runtime_pb2_grpc.RuntimeServiceStub(c) for c in channels], user


async def measure(phase: str, stubs: list[Any], user: Any, seconds: float) -> float:
    if phase == "latency":
        p50, _, _ = await bench.measure_latency(stubs, user, seconds)
        return p50
    if phase == "appends":
        return await bench.measure_appends(stubs, user, seconds)
    return await bench.measure_batches(stubs, user, seconds)


async def main(trees: dict[str, Path], phase: str, rounds: int, seconds: float) -> None:
    unit = {"latency": "ms p50", "appends": "appends/s", "batches": "events/s"}[phase]
    async with contextlib.AsyncExitStack() as stack:
        sides = {name: await start(stack, tree) for name, tree in trees.items()}
        results: dict[str, list[float]] = {name: [] for name in trees}
        for n in range(rounds):
            for name in list(trees) if n % 2 == 0 else list(trees)[::-1]:
                value = await measure(phase, *sides[name], seconds)
                results[name].append(value)
                print(f"round {n} {name}: {value:.2f} {unit}", flush=True)
        for name, values in results.items():
            print(f"{name} ({trees[name]}): median {statistics.median(values):.2f} {unit} of {len(values)} rounds")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--other", type=Path, required=True, help="the other checkout's root")
    parser.add_argument("--phase", choices=["latency", "appends", "batches"], default="latency")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
    trees = {"this": Path(__file__).resolve().parent.parent, "other": args.other.resolve()}
    asyncio.run(main(trees, args.phase, args.rounds, args.seconds))
