"""`make bench`: the runtime's append, batch and stream-latency benchmark (issue 4).

It starts its own servers, each in its own process so the client and the server under test do
not share a core: Postgres (embedded, or the admin URL in NEXUS_TEST_DATABASE_URL /
NEXUS_DATABASE_URL), a runtime (`nexus serve runtime`) and, as the baseline, a raw grpc.aio unary
echo with no interceptors. Baselines run in the same run, so ratios hold on a noisy machine.

The last line printed is one JSON object:
- append_eps: single-event AppendTaskEvents RPCs per second, 64 concurrent clients over 64 tasks;
- raw_grpc_rps: the raw echo with the same concurrency and the same request message;
- append_ratio = append_eps / raw_grpc_rps;
- batch_eps: events per second in 100-event appends (16 clients over 16 tasks);
- raw_batch_insert_eps: the same rows inserted with raw psycopg, 100 per statement, 16 connections;
- batch_ratio = batch_eps / raw_batch_insert_eps;
- latency_p50_ms / latency_p99_ms: from the start of an append to its receipt on a live stream,
  with 100 streams open (5 on each of 20 tasks).

Beside them, the floor under that latency, taken in the same run at the same pace (20 clients,
one call each every 50 ms): `raw_echo_p50_ms`, the raw echo's round trip, and
`raw_commit_p50_ms`, a raw psycopg one-row insert committed on its own. An append cannot be seen
on a stream sooner than one round trip plus one durable commit; `latency_floor_p50_ms` is their
sum. On a small VM most of it is waking idle processes, which a busy benchmark would hide.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import psycopg
from grpc_health.v1 import health_pb2, health_pb2_grpc

from launch.registry import ONTOLOGY, OWNING, RUNTIME, SERVICES

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nexus.kit import config, migrations, postgres  # noqa: E402
from nexus.kit.auth import bearer_metadata  # noqa: E402
from nexus.kit.config import Settings  # noqa: E402
from nexus.kit.tokens import TokenSigner, ensure_signing_key  # noqa: E402
from nexus.ontology.v1 import ontology_pb2, ontology_pb2_grpc  # noqa: E402
from nexus.runtime.v1 import runtime_pb2, runtime_pb2_grpc, task_pb2  # noqa: E402

CONCURRENCY = 64
BATCH_CLIENTS = 16
BATCH_SIZE = 100
STREAM_TASKS = 20
STREAMS_PER_TASK = 5
ECHO_METHOD = "/nexus.bench.Echo/Echo"
CHANNELS = 4
ROUNDS = 3
APPEND_PAUSE_S = 0.05  # each of the 20 appenders: about 20 appends a second


# -- the raw echo server (a subprocess of the benchmark) -----------------------------------------


async def serve_echo(port: int) -> None:
    """A bare grpc.aio server: no interceptors, no auth; decodes and encodes real messages."""

    async def echo(request: runtime_pb2.AppendTaskEventsRequest, context: Any) -> runtime_pb2.AppendTaskEventsResponse:
        return runtime_pb2.AppendTaskEventsResponse(
            events=[task_pb2.TaskEvent(task_id=request.task_id, seq=1, client_key=request.events[0].client_key)]
        )

    handler = grpc.unary_unary_rpc_method_handler(
        echo,
        request_deserializer=runtime_pb2.AppendTaskEventsRequest.FromString,
        response_serializer=runtime_pb2.AppendTaskEventsResponse.SerializeToString,
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("nexus.bench.Echo", {"Echo": handler})])
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(0.5)


# -- helpers ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def wait_ready(address: str, process: subprocess.Popen[bytes], *, health: bool) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        for _ in range(300):
            if process.poll() is not None:
                raise SystemExit(f"server on {address} exited with {process.returncode}")
            try:
                if health:
                    stub: Any = health_pb2_grpc.HealthStub(channel)
                    reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                else:
                    await asyncio.wait_for(channel.channel_ready(), 1)
                    return
            except (grpc.aio.AioRpcError, TimeoutError):
                pass
            await asyncio.sleep(0.1)
    raise SystemExit(f"server on {address} did not start")


async def run_for(seconds: float, workers: list[Callable[[], Awaitable[int]]], warmup: float = 0.5) -> float:
    """Runs each worker in a loop; returns units per second over `seconds` after a warm-up."""
    counting = False
    done = 0
    deadline = 0.0

    async def loop(work: Callable[[], Awaitable[int]]) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            units = await work()
            if counting:
                done += units

    deadline = time.perf_counter() + warmup + seconds
    tasks = [asyncio.ensure_future(loop(w)) for w in workers]
    await asyncio.sleep(warmup)
    counting = True
    started = time.perf_counter()
    await asyncio.gather(*tasks)
    return done / (time.perf_counter() - started)


def event(text: str) -> task_pb2.TaskEvent:
    message = task_pb2.TaskEvent(role=task_pb2.EVENT_ROLE_USER, type=task_pb2.EVENT_TYPE_MESSAGE, content_text=text)
    message.metadata.update({"message_type": "text"})
    return message


# -- the measurements ---------------------------------------------------------------------------


async def measure_echo(address: str, seconds: float) -> float:
    channels = [grpc.aio.insecure_channel(address) for _ in range(CHANNELS)]
    calls = [
        c.unary_unary(
            ECHO_METHOD,
            request_serializer=runtime_pb2.AppendTaskEventsRequest.SerializeToString,
            response_deserializer=runtime_pb2.AppendTaskEventsResponse.FromString,
        )
        for c in channels
    ]
    request = runtime_pb2.AppendTaskEventsRequest(task_id=str(uuid.uuid4()), events=[event("hello from the bench")])

    def worker(i: int) -> Callable[[], Awaitable[int]]:
        call = calls[i % CHANNELS]

        async def once() -> int:
            await call(request, metadata=(("authorization", "Bearer x"),))
            return 1

        return once

    try:
        return await run_for(seconds, [worker(i) for i in range(CONCURRENCY)])
    finally:
        for c in channels:
            await c.close()


BENCH_AGENTS = ("bench-append", "bench-batch", "bench-raw", "bench-latency")


async def create_agents(address: str, admin: Any) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = ontology_pb2_grpc.OntologyServiceStub(channel)
        for agent_id in BENCH_AGENTS:
            request = ontology_pb2.CreateAgentRequest(agent=ontology_pb2.Agent(name=agent_id), agent_id=agent_id)
            await stub.CreateAgent(request, metadata=admin)


async def create_tasks(stub: Any, user: Any, n: int, agent: str) -> list[str]:
    ids = []
    for _ in range(n):
        task = task_pb2.Task(agent_id=agent, trigger_source=task_pb2.TRIGGER_SOURCE_CHAT_MANUAL, title="bench")
        ids.append((await stub.CreateTask(runtime_pb2.CreateTaskRequest(task=task), metadata=user)).task_id)
    return ids


async def measure_appends(stubs: list[Any], user: Any, seconds: float) -> float:
    tasks = await create_tasks(stubs[0], user, CONCURRENCY, "bench-append")

    def worker(i: int) -> Callable[[], Awaitable[int]]:
        stub = stubs[i % CHANNELS]
        request = runtime_pb2.AppendTaskEventsRequest(task_id=tasks[i], events=[event("hello from the bench")])

        async def once() -> int:
            await stub.AppendTaskEvents(request, metadata=user)
            return 1

        return once

    return await run_for(seconds, [worker(i) for i in range(CONCURRENCY)])


async def measure_batches(stubs: list[Any], user: Any, seconds: float) -> float:
    tasks = await create_tasks(stubs[0], user, BATCH_CLIENTS, "bench-batch")

    def worker(i: int) -> Callable[[], Awaitable[int]]:
        stub = stubs[i % CHANNELS]
        request = runtime_pb2.AppendTaskEventsRequest(
            task_id=tasks[i], events=[event(f"event {j} of a batch") for j in range(BATCH_SIZE)]
        )

        async def once() -> int:
            await stub.AppendTaskEvents(request, metadata=user)
            return BATCH_SIZE

        return once

    return await run_for(seconds, [worker(i) for i in range(BATCH_CLIENTS)])


RAW_INSERT = (
    "INSERT INTO runtime.task_event (task_id, seq, role, type, content_text, render_payload, metadata, client_key)"
    " SELECT t, s, r, ty, c, p, m, k FROM unnest("
    "%s::uuid[], %s::int8[], %s::text[], %s::text[], %s::text[], %s::jsonb[], %s::jsonb[], %s::text[]"
    ") AS x(t, s, r, ty, c, p, m, k)"
)


async def measure_raw_inserts(settings: Settings, stub: Any, user: Any, seconds: float) -> float:
    """The same rows, straight into the same table: one 100-row statement per transaction."""
    tasks = await create_tasks(stub, user, BATCH_CLIENTS, "bench-raw")
    url = postgres.service_url(settings, "runtime", driver="postgresql")
    conns = [await psycopg.AsyncConnection.connect(url, autocommit=True) for _ in range(BATCH_CLIENTS)]
    texts = [f"event {j} of a batch" for j in range(BATCH_SIZE)]
    meta = json.dumps({"message_type": "text"})

    def worker(i: int) -> Callable[[], Awaitable[int]]:
        conn = conns[i]
        seq = 1_000_000

        async def once() -> int:
            nonlocal seq
            seqs = list(range(seq, seq + BATCH_SIZE))
            seq += BATCH_SIZE
            await conn.execute(
                RAW_INSERT,
                (
                    [tasks[i]] * BATCH_SIZE,
                    seqs,
                    ["user"] * BATCH_SIZE,
                    ["message"] * BATCH_SIZE,
                    texts,
                    [None] * BATCH_SIZE,
                    [meta] * BATCH_SIZE,
                    [None] * BATCH_SIZE,
                ),
            )
            return BATCH_SIZE

        return once

    try:
        return await run_for(seconds, [worker(i) for i in range(BATCH_CLIENTS)])
    finally:
        for conn in conns:
            await conn.close()


async def measure_latency(stubs: list[Any], user: Any, seconds: float) -> tuple[float, float, int]:
    tasks = await create_tasks(stubs[0], user, STREAM_TASKS, "bench-latency")
    sent: dict[tuple[str, int], float] = {}
    latencies: list[float] = []
    ready = asyncio.Event()
    opened = 0

    async def stream(i: int, task_id: str) -> None:
        nonlocal opened
        call = stubs[i % CHANNELS].StreamTaskEvents(
            runtime_pb2.StreamTaskEventsRequest(task_id=task_id, after_seq=1), metadata=user
        )
        opened += 1
        if opened == STREAM_TASKS * STREAMS_PER_TASK:
            ready.set()
        with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
            async for received in call:
                now = time.perf_counter()
                t0 = sent.get((task_id, received.seq))
                if t0 is not None:
                    latencies.append(now - t0)

    streams = [
        asyncio.ensure_future(stream(i * STREAMS_PER_TASK + j, t))
        for i, t in enumerate(tasks)
        for j in range(STREAMS_PER_TASK)
    ]
    await ready.wait()
    await asyncio.sleep(1.0)  # every stream has replayed and is live
    deadline = time.perf_counter() + seconds
    appended = 0

    async def appender(i: int, task_id: str) -> None:
        nonlocal appended
        stub = stubs[i % CHANNELS]
        seq = 1
        while time.perf_counter() < deadline:
            seq += 1
            sent[(task_id, seq)] = time.perf_counter()
            reply = await stub.AppendTaskEvents(
                runtime_pb2.AppendTaskEventsRequest(task_id=task_id, events=[event("ping")]), metadata=user
            )
            assert reply.events[0].seq == seq
            appended += 1
            await asyncio.sleep(APPEND_PAUSE_S)

    await asyncio.gather(*[appender(i, t) for i, t in enumerate(tasks)])
    await asyncio.sleep(0.5)
    for s in streams:
        s.cancel()
    await asyncio.gather(*streams, return_exceptions=True)
    latencies.sort()
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
    return p50, p99, len(latencies)


async def measure_floor(
    echo_address: str, settings: Settings, stub: Any, user: Any, seconds: float
) -> tuple[float, float]:
    """p50 of the raw echo round trip and of a raw one-row commit, paced as the latency phase."""
    tasks = await create_tasks(stub, user, STREAM_TASKS, "bench-raw")
    url = postgres.service_url(settings, "runtime", driver="postgresql")
    conns = [await psycopg.AsyncConnection.connect(url, autocommit=True) for _ in range(STREAM_TASKS)]
    channel = grpc.aio.insecure_channel(echo_address)
    echo = channel.unary_unary(
        ECHO_METHOD,
        request_serializer=runtime_pb2.AppendTaskEventsRequest.SerializeToString,
        response_deserializer=runtime_pb2.AppendTaskEventsResponse.FromString,
    )
    meta = json.dumps({"message_type": "text"})
    echoes: list[float] = []
    commits: list[float] = []
    deadline = time.perf_counter() + seconds

    async def client(i: int) -> None:
        request = runtime_pb2.AppendTaskEventsRequest(task_id=tasks[i], events=[event("ping")])
        seq = 2_000_000
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await echo(request, metadata=user)
            echoes.append(time.perf_counter() - started)
            await asyncio.sleep(APPEND_PAUSE_S)
            seq += 1
            started = time.perf_counter()
            await conns[i].execute(
                RAW_INSERT, ([tasks[i]], [seq], ["user"], ["message"], ["ping"], [None], [meta], [None])
            )
            commits.append(time.perf_counter() - started)
            await asyncio.sleep(APPEND_PAUSE_S)

    try:
        await asyncio.gather(*[client(i) for i in range(STREAM_TASKS)])
    finally:
        await channel.close()
        for conn in conns:
            await conn.close()
    return statistics.median(echoes) * 1000, statistics.median(commits) * 1000


# -- orchestration ------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def database() -> AsyncIterator[Settings]:
    data_dir = Path(tempfile.mkdtemp(prefix="nexus-bench-"))
    admin = os.environ.get("NEXUS_TEST_DATABASE_URL") or os.environ.get("NEXUS_DATABASE_URL")
    embedded = None
    if not admin:
        embedded = postgres.EmbeddedPostgres(data_dir)
        admin = embedded.start()
    suffix = secrets.token_hex(4)
    settings = Settings(
        data_dir=data_dir,
        database_url=admin,
        database_name=f"nexus_bench_{suffix}",
        db_role_prefix=f"nb{suffix}_",
        log_level="WARNING",
        # The runtime checks each new task's agent with the ontology service, found at this port.
        ports={**{spec.name: spec.default_port for spec in SERVICES}, "ontology": free_port()},
    )
    ensure_signing_key(settings.resolved_signing_keys_dir)
    postgres.bootstrap(settings, OWNING)
    migrations.upgrade(settings, RUNTIME)
    migrations.upgrade(settings, ONTOLOGY)
    try:
        yield settings
    finally:
        postgres.drop(settings, OWNING)
        if embedded is not None:
            embedded.stop()


async def bench(seconds: float) -> dict[str, float]:
    async with database() as settings:
        env = {**os.environ, **config.to_env(settings)}
        signer = TokenSigner(
            ensure_signing_key(settings.resolved_signing_keys_dir),
            issuer=settings.token_issuer,
            audience=settings.token_audience,
        )
        user = bearer_metadata(signer.mint(str(uuid.uuid4()), kind="user", scopes=[], ttl_s=3600))

        admin = bearer_metadata(signer.mint("service:bench", kind="service", scopes=["ontology.admin"], ttl_s=3600))

        ontology_address = settings.address("ontology")
        ontology = spawn(["-m", "launch", "serve", "ontology"], env)
        echo_port = free_port()
        echo = spawn([__file__, "echo-server", "--port", str(echo_port)], env)
        port = free_port()
        runtime = spawn(["-m", "launch", "serve", "runtime", "--port", str(port)], env)
        channels = [grpc.aio.insecure_channel(f"127.0.0.1:{port}") for _ in range(CHANNELS)]
        try:
            await wait_ready(ontology_address, ontology, health=True)
            await create_agents(ontology_address, admin)
            await wait_ready(f"127.0.0.1:{echo_port}", echo, health=False)
            await wait_ready(f"127.0.0.1:{port}", runtime, health=True)
            stubs = [runtime_pb2_grpc.RuntimeServiceStub(c) for c in channels]
            # Rounds alternate the baseline and the runtime, so a noisy neighbour hits both alike;
            # each figure is the median of its rounds.
            echo_rates, append_rates, batch_rates, raw_rates = [], [], [], []
            for _ in range(ROUNDS):
                echo_rates.append(await measure_echo(f"127.0.0.1:{echo_port}", seconds))
                append_rates.append(await measure_appends(stubs, user, seconds))
                print(f"echo {echo_rates[-1]:.0f} rps, appends {append_rates[-1]:.0f} eps", file=sys.stderr)
            for _ in range(ROUNDS):
                raw_rates.append(await measure_raw_inserts(settings, stubs[0], user, seconds))
                batch_rates.append(await measure_batches(stubs, user, seconds))
                print(f"raw inserts {raw_rates[-1]:.0f} eps, batches {batch_rates[-1]:.0f} eps", file=sys.stderr)
            raw_rps, append_eps = statistics.median(echo_rates), statistics.median(append_rates)
            raw_insert_eps, batch_eps = statistics.median(raw_rates), statistics.median(batch_rates)
            p50, p99, samples = await measure_latency(stubs, user, seconds * 2)
            print(f"stream latency: p50 {p50:.2f} ms, p99 {p99:.2f} ms ({samples} deliveries)", file=sys.stderr)
            echo_p50, commit_p50 = await measure_floor(f"127.0.0.1:{echo_port}", settings, stubs[0], user, seconds * 2)
            print(
                f"latency floor: raw echo p50 {echo_p50:.2f} ms + raw commit p50 {commit_p50:.2f} ms", file=sys.stderr
            )
        finally:
            for c in channels:
                await c.close()
            stop(runtime)
            stop(echo)
            stop(ontology)
    return {
        "append_eps": round(append_eps, 1),
        "raw_grpc_rps": round(raw_rps, 1),
        "append_ratio": round(append_eps / raw_rps, 3),
        "batch_eps": round(batch_eps, 1),
        "raw_batch_insert_eps": round(raw_insert_eps, 1),
        "batch_ratio": round(batch_eps / raw_insert_eps, 3),
        "latency_p50_ms": round(p50, 3),
        "latency_p99_ms": round(p99, 3),
        "raw_echo_p50_ms": round(echo_p50, 3),
        "raw_commit_p50_ms": round(commit_p50, 3),
        "latency_floor_p50_ms": round(echo_p50 + commit_p50, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    echo = sub.add_parser("echo-server", help="(internal) run the raw echo baseline server")
    echo.add_argument("--port", type=int, required=True)
    parser.add_argument("--seconds", type=float, default=3.0, help="measured seconds per phase and round (default 3)")
    args = parser.parse_args()
    if args.command == "echo-server":
        asyncio.run(serve_echo(args.port))
        return
    result = asyncio.run(bench(args.seconds))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
