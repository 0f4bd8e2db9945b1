"""`nexus`: the one operator command (DESIGN §6).

Each subcommand parses its flags here and delegates to the module that owns the behaviour.
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from launch import registry
from nexus.kit import config, logs
from nexus.kit.config import Settings

if TYPE_CHECKING:  # the client loads only for the commands that use it
    from nexus.client.run import Console, Invocation

Command = Callable[[argparse.Namespace, Settings], int]


def _settings(args: argparse.Namespace) -> Settings:
    settings = config.from_env(services=registry.SERVICES).with_overrides(
        data_dir=args.data_dir, database_url=args.database_url, host=getattr(args, "host", None)
    )
    logs.configure(settings.log_level)
    return settings


def cmd_up(args: argparse.Namespace, settings: Settings) -> int:
    from launch import platform

    return asyncio.run(platform.up(settings, with_worker=not args.no_worker))


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from launch import platform

    only = registry.BY_NAME[args.service] if args.service else None
    platform.with_database(settings, lambda s: platform.migrate(s, only, downgrade_to=args.downgrade))
    return 0


def cmd_init(args: argparse.Namespace, settings: Settings) -> int:
    from launch import platform

    def run(s: Settings) -> None:
        platform.migrate(s)
        asyncio.run(platform.prepare_local(s))

    platform.with_database(settings, run)
    print("initialised: migrations, keys and the catalog are in place")
    return 0


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from launch import platform
    from nexus.kit.server import NexusServer, serve_forever

    def serving(server: NexusServer) -> None:
        if args.ready_fd is not None:
            platform.report_ready(args.ready_fd)

    def run(s: Settings) -> None:
        asyncio.run(serve_forever(registry.BY_NAME[args.service], s, port=args.port, on_serving=serving))

    platform.with_database(settings, run)
    return 0


def cmd_token_mint(args: argparse.Namespace, settings: Settings) -> int:
    from nexus.kit.tokens import TokenSigner, load_signing_keys

    keys = load_signing_keys(settings.resolved_signing_keys_dir)
    if not keys:
        print(
            f"no signing key in {settings.resolved_signing_keys_dir}; run `nexus up` once or set "
            "NEXUS_SIGNING_KEYS_DIR",
            file=sys.stderr,
        )
        return 2
    signer = TokenSigner(keys[-1], issuer=settings.token_issuer, audience=settings.token_audience)
    print(signer.mint(f"service:{args.subject}", kind="service", scopes=args.scope, ttl_s=args.ttl))
    return 0


MAX_SUBJECT_CHARS = 128


def _token_subject(text: str) -> str:
    """Who a service token is for, without its `service:` prefix (given or not)."""
    name = text.removeprefix("service:")
    if not name:
        raise argparse.ArgumentTypeError("the subject must not be empty (who is the token for? e.g. worker-1)")
    if len(name) > MAX_SUBJECT_CHARS or any(c.isspace() or not c.isprintable() for c in name):
        raise argparse.ArgumentTypeError(
            f"the subject must be at most {MAX_SUBJECT_CHARS} printable characters without spaces, e.g. worker-1"
        )
    return name


def _token_scope(name: str) -> str:
    if name in registry.SCOPES:
        return name
    close = difflib.get_close_matches(name, list(registry.SCOPES), n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise argparse.ArgumentTypeError(f"unknown scope {name!r}{hint}; `nexus token mint --help` lists the scopes")


def _token_ttl(text: str) -> int:
    try:
        seconds = int(text)
    except ValueError:
        seconds = 0
    if seconds < 1:
        raise argparse.ArgumentTypeError(f"the lifetime must be a whole number of seconds, at least 1 (got {text!r})")
    return seconds


def _scopes_help() -> str:
    width = max(len(name) for name in registry.SCOPES)
    lines = [f"  {scope.name:<{width}}  {scope.description}" for scope in registry.SCOPES.values()]
    return "scopes (each service checks its own):\n" + "\n".join(lines)


def cmd_keys_add_signing(args: argparse.Namespace, settings: Settings) -> int:
    from nexus.kit.tokens import generate_signing_key

    key = generate_signing_key(settings.resolved_signing_keys_dir)
    print(f"new signing key {key.kid}; it signs new tokens once the user service restarts")
    return 0


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from worker import main, options

    try:
        opts = options.from_env().with_overrides(
            agents=tuple(args.agents) if args.agents else None,
            concurrency=args.concurrency,
            lease_s=args.lease,
            poll_s=args.poll,
            step_delay_s=args.step_delay,
            grace_s=args.grace,
            heartbeat_file=args.heartbeat_file,
        )
        if args.check:
            healthy, why = main.check(settings, opts, max_age_s=args.max_age)
            print(why)
            return 0 if healthy else 1
        return asyncio.run(main.serve(settings, opts))
    except config.ConfigError as err:
        print(f"nexus worker: {err}", file=sys.stderr)
        return 2


def cmd_health(args: argparse.Namespace, settings: Settings) -> int:
    """Exit 0 when the server at ADDRESS reports SERVING (container health checks use it)."""
    from launch.platform import check_health

    status = asyncio.run(check_health(settings, args.address, args.service))
    print(status)
    return 0 if status == "SERVING" else 1


def cmd_keys_add_credential(args: argparse.Namespace, settings: Settings) -> int:
    from services.user.keys import add_key

    path = settings.resolved_credential_keys_file
    key = add_key(path)
    print(
        f"new credential key {key.kid} in {path}; the user service encrypts with it from its next write. "
        "Run `nexus keys rotate` to re-encrypt the stored credentials under it."
    )
    return 0


def cmd_keys_rotate(args: argparse.Namespace, settings: Settings) -> int:
    from launch import platform
    from services.user import rotation

    def run(s: Settings) -> int:
        return asyncio.run(rotation.run(s, batch_size=args.batch_size, out=sys.stdout))

    try:
        return platform.with_database(settings, run)
    except config.ConfigError as err:
        print(f"nexus: {err}", file=sys.stderr)
        return 2


def cmd_catalog_load(args: argparse.Namespace, settings: Settings) -> int:
    from launch import platform
    from nexus.kit.errors import from_database
    from services.ontology import catalog

    try:
        changes = platform.with_database(settings, lambda s: asyncio.run(catalog.load(s, args.file)))
    except catalog.CatalogError as err:
        print(f"nexus: the catalog is not valid ({len(err.problems)} problems):", file=sys.stderr)
        for problem in err.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    except Exception as err:
        failure = from_database(err)
        if failure is None:
            raise
        why = f"{failure.reason}: {failure}"
        print(f"nexus: cannot load the catalog ({why}); has `nexus migrate` run?", file=sys.stderr)
        return 1
    print(f"catalog: {catalog.describe(changes)}")
    return 0


def _client(args: argparse.Namespace, settings: Settings, name: str) -> tuple[str, Console, Invocation]:
    """The gateway address, the console and the invocation of a task command (run, tail, answer, cancel)."""
    import os

    from nexus.client.run import Console, Invocation

    if not os.environ.get("NEXUS_LOG_LEVEL"):
        logs.configure("WARNING")  # a client's terminal shows the task, not request logs
    program = sys.argv[0] if Path(sys.argv[0]).name == "nexus" else "nexus"
    invocation = Invocation(program=program, data_dir=args.data_dir, gateway=args.gateway)
    return args.gateway or settings.address("gateway"), Console(sys.stdout, sys.stderr, name=name), invocation


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from nexus.client.run import EXIT_INTERRUPTED, Answers, run

    address, console, invocation = _client(args, settings, "nexus run")
    try:
        return asyncio.run(
            run(
                args.text,
                address=address,
                settings=settings,
                answers=Answers(args.answer, sys.stdin),
                console=console,
                session_id=args.session or "",
                invocation=invocation,
            )
        )
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED  # what became of the task has been said


def cmd_tail(args: argparse.Namespace, settings: Settings) -> int:
    from nexus.client.run import EXIT_INTERRUPTED, tail

    address, console, invocation = _client(args, settings, "nexus tail")
    try:
        return asyncio.run(
            tail(
                args.task,
                address=address,
                settings=settings,
                console=console,
                after_seq=args.after,
                invocation=invocation,
            )
        )
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def cmd_answer(args: argparse.Namespace, settings: Settings) -> int:
    from nexus.client.run import answer

    address, console, invocation = _client(args, settings, "nexus answer")
    return asyncio.run(
        answer(args.task, args.text, address=address, settings=settings, console=console, invocation=invocation)
    )


def cmd_cancel(args: argparse.Namespace, settings: Settings) -> int:
    from nexus.client.run import cancel

    address, console, _ = _client(args, settings, "nexus cancel")
    return asyncio.run(cancel(args.task, address=address, settings=settings, console=console, reason=args.reason))


def _seq(text: str) -> int:
    try:
        seq = int(text)
    except ValueError:
        seq = -1
    if seq < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number, 0 or more (got {text!r})")
    return seq


def _add_gateway(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--gateway", metavar="ADDR", help="the gateway's host:port (default: NEXUS_GATEWAY_ADDR or 127.0.0.1:50050)"
    )


EXIT_STATUS_RUN = """exit status:
  0    the task finished
  1    the task failed or was cancelled, or the gateway refused the call
  2    the command line does not resolve (the reasons, and the commands or the command's usage, are printed)
  3    the task waits for an answer and none is left (no more --answer, standard input ended): the
       message names the task and the `nexus answer` / `nexus cancel` commands; the task keeps waiting
  4    the gateway cannot be reached, or stopped answering mid-run: the task goes on, `nexus tail` resumes it
  130  interrupted (Ctrl-C): the task is cancelled, and the message says so"""

EXIT_STATUS_TAIL = """exit status:
  0    the task finished
  1    the task failed or was cancelled, or the gateway refused the call (no such task, say)
  2    a malformed task id or --after
  4    the gateway cannot be reached, or stopped answering
  130  interrupted (Ctrl-C): only the watching stops; the task goes on"""

EXIT_STATUS_CALL = """exit status:
  0    done
  1    the gateway refused (no such task, or it does not wait for input / has already ended)
  2    a malformed task id or answer
  4    the gateway cannot be reached"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nexus", description="Run and operate the Nexus platform.")
    parser.add_argument("--data-dir", type=Path, help="state directory (NEXUS_DATA_DIR, default ./.nexus)")
    parser.add_argument("--database-url", help="admin Postgres URL (NEXUS_DATABASE_URL; default: embedded)")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser(
        "up",
        help="run everything on this machine until Ctrl-C",
        description="Runs Postgres (embedded unless NEXUS_DATABASE_URL is set), migrations, the catalog, every "
        "service and the reference worker on this machine, on loopback, until Ctrl-C. Every port must be free "
        "first. Exit status: 0 after Ctrl-C; 1 when something cannot start (a port in use, a process that "
        "exits) or stops unexpectedly.",
    )
    up.add_argument("--no-worker", action="store_true", help="do not start the reference worker")
    up.set_defaults(run=cmd_up)

    migrate = sub.add_parser("migrate", help="apply every service's migrations")
    migrate.add_argument("--service", choices=[spec.name for spec in registry.OWNING], help="only this service")
    migrate.add_argument("--downgrade", metavar="REVISION", help="downgrade to REVISION (e.g. base) instead")
    migrate.set_defaults(run=cmd_migrate)

    init = sub.add_parser(
        "init", help="migrations, keys and the catalog: what `up` prepares before starting services (one-shot jobs)"
    )
    init.set_defaults(run=cmd_init)

    serve = sub.add_parser("serve", help="run one service in this process")
    serve.add_argument("service", choices=list(registry.BY_NAME))
    serve.add_argument("--port", type=int, help="listen port (default: the service's NEXUS_<SERVICE>_PORT)")
    serve.add_argument("--host", help="listen host (NEXUS_HOST, default 127.0.0.1)")
    # `nexus up` hands each child a pipe and waits for this process's own word that it serves.
    serve.add_argument("--ready-fd", type=int, help=argparse.SUPPRESS)
    serve.set_defaults(run=cmd_serve)

    run = sub.add_parser(
        "run",
        help="sign in as the local demo account, run a slash command and show its events live",
        description="Signs in as the local demo account (created on first use, kept in the data dir), runs a "
        "command through the gateway and renders the task live until it ends. A question is answered with the "
        "next --answer, else a line of standard input (a prompt on a terminal).",
        epilog=EXIT_STATUS_RUN,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("text", help='a command line, e.g. "/scan https://example.com"')
    _add_gateway(run)
    run.add_argument(
        "--answer",
        action="append",
        default=[],
        help="an answer for the task's next question; repeat for several (then standard input is read)",
    )
    run.add_argument("--session", metavar="ID", help="a session (UUID) for the task")
    run.set_defaults(run=cmd_run)

    tail = sub.add_parser(
        "tail",
        help="show a task's events, from the start or after a seq, live until it ends",
        description="Shows a task of the demo account as `nexus run` does: its events from the start, or only "
        "those after --after SEQ, then live until the task ends. It answers nothing: a question it shows is "
        "answered with `nexus answer`.",
        epilog=EXIT_STATUS_TAIL,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    tail.add_argument("task", metavar="TASK", help="the task id `nexus run` printed")
    tail.add_argument("--after", metavar="SEQ", type=_seq, default=0, help="show only the events after this seq")
    _add_gateway(tail)
    tail.set_defaults(run=cmd_tail)

    answer = sub.add_parser(
        "answer",
        help="answer a task that waits for input",
        description="Answers the question a task of the demo account waits on; the task is queued again.",
        epilog=EXIT_STATUS_CALL,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    answer.add_argument("task", metavar="TASK", help="the task id")
    answer.add_argument("text", metavar="TEXT", help="the answer")
    _add_gateway(answer)
    answer.set_defaults(run=cmd_answer)

    cancel = sub.add_parser(
        "cancel",
        help="cancel a task",
        description="Cancels a task of the demo account (cancelling a cancelled task changes nothing).",
        epilog=EXIT_STATUS_CALL,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cancel.add_argument("task", metavar="TASK", help="the task id")
    cancel.add_argument("--reason", default="", help="why, kept with the task's cancel event")
    _add_gateway(cancel)
    cancel.set_defaults(run=cmd_cancel)

    health = sub.add_parser("health", help="probe a server's gRPC health; exit 0 when SERVING")
    health.add_argument("address", help="host:port")
    health.add_argument("--service", default="", help="a service name (default: the whole server)")
    health.set_defaults(run=cmd_health)

    worker = sub.add_parser("worker", help="run the reference worker until Ctrl-C (service token in NEXUS_TOKEN)")
    worker.add_argument(
        "--agent",
        dest="agents",
        action="append",
        help="work for this agent; repeat for several (NEXUS_WORKER_AGENTS, comma-separated; default: the seed "
        "catalog's agents, the ones the reference worker implements)",
    )
    worker.add_argument("--concurrency", type=int, help="tasks driven at once (NEXUS_WORKER_CONCURRENCY, default 4)")
    worker.add_argument(
        "--lease", type=float, help="lease seconds, renewed at a third (NEXUS_WORKER_LEASE_S, default 30)"
    )
    worker.add_argument(
        "--poll", type=float, help="seconds between claims when idle (NEXUS_WORKER_POLL_S, default 0.5)"
    )
    worker.add_argument(
        "--step-delay", type=float, help="pause after each step's effect, for demos (NEXUS_WORKER_STEP_DELAY_S)"
    )
    worker.add_argument(
        "--grace", type=float, help="on SIGTERM, seconds for the current steps to end (NEXUS_WORKER_GRACE_S, default 5)"
    )
    worker.add_argument(
        "--heartbeat-file",
        type=Path,
        help="liveness file (NEXUS_WORKER_HEARTBEAT_FILE, default <data dir>/worker.heartbeat)",
    )
    worker.add_argument("--check", action="store_true", help="probe: exit 0 when the worker's heartbeat is fresh")
    worker.add_argument("--max-age", type=float, help="with --check: the oldest acceptable heartbeat in seconds")
    worker.set_defaults(run=cmd_worker)

    token = sub.add_parser("token", help="service tokens").add_subparsers(dest="token_command", required=True)
    mint = token.add_parser(
        "mint",
        help="mint a service token and print it",
        description="Mints a service token signed with the newest signing key and prints it. A bad subject, "
        "scope or lifetime exits 2.",
        epilog=_scopes_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    mint.add_argument(
        "--subject",
        required=True,
        type=_token_subject,
        help="who the token is for, e.g. worker-1 (its sub claim is service:SUBJECT)",
    )
    mint.add_argument(
        "--scope", action="append", default=[], type=_token_scope, help="a scope (below); repeat for several"
    )
    mint.add_argument("--ttl", type=_token_ttl, default=24 * 3600, help="lifetime in seconds (default 1 day)")
    mint.set_defaults(run=cmd_token_mint)

    catalog = sub.add_parser("catalog", help="the seed catalog").add_subparsers(dest="catalog_command", required=True)
    load = catalog.add_parser("load", help="load the catalog (idempotent; needs `nexus migrate` first)")
    load.add_argument("--file", type=Path, help="catalog file (default: catalog/catalog.toml of the repository)")
    load.set_defaults(run=cmd_catalog_load)

    keys = sub.add_parser("keys", help="signing and credential keys").add_subparsers(dest="keys_command", required=True)
    add_signing = keys.add_parser("add-signing", help="add a new token signing key")
    add_signing.set_defaults(run=cmd_keys_add_signing)
    add_credential = keys.add_parser(
        "add-credential", help="add a new newest credential encryption key (NEXUS_CREDENTIAL_KEYS_FILE)"
    )
    add_credential.set_defaults(run=cmd_keys_add_credential)
    rotate = keys.add_parser(
        "rotate", help="re-encrypt every stored credential under the newest key (safe while services run)"
    )
    rotate.add_argument("--batch-size", type=int, default=200, help="rows per transaction (default 200)")
    rotate.set_defaults(run=cmd_keys_rotate)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        settings = _settings(args)
    except config.ConfigError as err:
        print(f"nexus: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    run: Command = args.run
    raise SystemExit(run(args, settings))


if __name__ == "__main__":
    main()
