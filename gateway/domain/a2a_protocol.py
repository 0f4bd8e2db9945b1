"""A2A v1.0 (`lf.a2a.v1`) as the gateway speaks it: the rules that need no I/O.

- Which Nexus status is which A2A task state, and which states end a stream or a turn.
- The protocol version a request asks for (`A2A-Version`; empty means 0.3, which Nexus does not
  serve), and the errors A2A defines (ErrorInfo domain `a2a-protocol.org`, its reasons), so that
  an A2A client recognises them.
- Nexus's own extension: every A2A event carries the task event's seq in its metadata, and
  SubscribeToTask resumes after a seq given in `Nexus-After-Seq`, with no gap and no duplicate.
- Where the gateway's A2A interfaces are, as agent cards announce them.
- How a command reads as an example in a card (`/scan <url> [depth=quick|deep]`).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from a2a.types import a2a_pb2 as a2a

from nexus.kit.errors import FailedPrecondition, FieldViolation, InvalidArgument, NotFound
from nexus.ontology.v1 import ontology_pb2 as onto
from nexus.runtime.v1 import task_pb2

A2A_DOMAIN = "a2a-protocol.org"
PROTOCOL_VERSION = "1.0"
# What an empty A2A-Version means (A2A §3.6.2).
UNVERSIONED = "0.3"

# Service parameters (gRPC metadata keys, HTTP headers), lowercase as gRPC delivers them.
VERSION_PARAMETER = "a2a-version"
EXTENSIONS_PARAMETER = "a2a-extensions"
AFTER_SEQ_PARAMETER = "nexus-after-seq"

# The event-seq extension: declared in every card; its metadata key is its URI (A2A §4.6).
SEQ_EXTENSION = "urn:nexus:a2a:event-seq:v1"
SEQ_EXTENSION_DESCRIPTION = (
    "Every Task, status update and artifact update carries metadata "
    f'{{"{SEQ_EXTENSION}": {{"seq": N}}}}: the seq of the Nexus task event it comes from (a Task: '
    "the last seq it reflects). SubscribeToTask with the service parameter Nexus-After-Seq: N "
    "replays every event after N, then follows live, so a client that reconnects with the last seq "
    "it saw misses nothing and sees nothing twice; with it, an ended task's remaining events are "
    "replayed too instead of the call being refused."
)
MAX_SEQ = 2**63 - 1

# Tasks and agent messages A2A names get ids derived from the Nexus ids, stable across calls.
_IDS = uuid.UUID("5d0b8f0e-8d7c-4b43-9b59-7c2f3c1a2a01")

STATES: Mapping[int, a2a.TaskState] = {
    task_pb2.TASK_STATUS_QUEUED: a2a.TASK_STATE_SUBMITTED,
    task_pb2.TASK_STATUS_RUNNING: a2a.TASK_STATE_WORKING,
    task_pb2.TASK_STATUS_WAITING_INPUT: a2a.TASK_STATE_INPUT_REQUIRED,
    task_pb2.TASK_STATUS_FINISHED: a2a.TASK_STATE_COMPLETED,
    task_pb2.TASK_STATUS_FAILED: a2a.TASK_STATE_FAILED,
    task_pb2.TASK_STATUS_CANCELLED: a2a.TASK_STATE_CANCELED,
}
# The status names the runtime writes into its status events' metadata.
STATUS_NAMES: Mapping[str, int] = {
    "queued": task_pb2.TASK_STATUS_QUEUED,
    "running": task_pb2.TASK_STATUS_RUNNING,
    "waiting_input": task_pb2.TASK_STATUS_WAITING_INPUT,
    "finished": task_pb2.TASK_STATUS_FINISHED,
    "failed": task_pb2.TASK_STATUS_FAILED,
    "cancelled": task_pb2.TASK_STATUS_CANCELLED,
}
# A2A's filter states, as runtime statuses (REJECTED and AUTH_REQUIRED never happen in Nexus).
STATUSES_OF_STATE: Mapping[int, tuple[int, ...]] = {state: (status,) for status, state in STATES.items()}
TERMINAL = frozenset({task_pb2.TASK_STATUS_FINISHED, task_pb2.TASK_STATUS_FAILED, task_pb2.TASK_STATUS_CANCELLED})
# A2A's interrupted states: the task waits for its client, so a turn (SendMessage) ends there.
INTERRUPTED = frozenset({task_pb2.TASK_STATUS_WAITING_INPUT})


def state_of(status: int) -> a2a.TaskState:
    return STATES.get(status, a2a.TASK_STATE_UNSPECIFIED)


def ends_turn(status: int) -> bool:
    """A blocking SendMessage returns, and SendStreamingMessage ends, at these statuses."""
    return status in TERMINAL or status in INTERRUPTED


def message_id(task_id: str, seq: int) -> str:
    """The A2A message id of a task event: the same event always has the same id."""
    return str(uuid.uuid5(_IDS, f"{task_id}:{seq}"))


def request_id(kind: str, message_id: str) -> str:
    """The idempotency key of what an A2A message creates (a session, a task): a retry of the
    same message (A2A lets clients resend with the same messageId) returns the first result."""
    return str(uuid.uuid5(_IDS, f"{kind}:{message_id}"))


def client_key(message_id: str) -> str:
    """The client key of the event an A2A message appends to a task, so a resend appends it once."""
    return f"a2a:{message_id}"


def message_id_of_key(key: str) -> str | None:
    return key.removeprefix("a2a:") if key.startswith("a2a:") else None


# -- errors A2A defines (A2A §3.3.2, §5.4) --------------------------------------------------------


def task_not_found() -> NotFound:
    """Another user's task answers exactly as an unknown id does."""
    return NotFound("task not found", reason="TASK_NOT_FOUND", domain=A2A_DOMAIN)


def task_not_cancelable() -> FailedPrecondition:
    return FailedPrecondition(
        "the task has already ended and cannot be canceled", reason="TASK_NOT_CANCELABLE", domain=A2A_DOMAIN
    )


def unsupported(message: str) -> FailedPrecondition:
    return FailedPrecondition(message, reason="UNSUPPORTED_OPERATION", domain=A2A_DOMAIN)


def push_not_supported() -> FailedPrecondition:
    return FailedPrecondition(
        "push notifications are not supported by this agent (its card says pushNotifications: false)",
        reason="PUSH_NOTIFICATION_NOT_SUPPORTED",
        domain=A2A_DOMAIN,
    )


def content_type_not_supported(violations: Sequence[FieldViolation]) -> InvalidArgument:
    return InvalidArgument(
        f"{violations[0].field}: {violations[0].description}",
        reason="CONTENT_TYPE_NOT_SUPPORTED",
        violations=violations,
        domain=A2A_DOMAIN,
    )


def invalid_params(
    violations: Sequence[FieldViolation], *, message: str = "", metadata: Mapping[str, str] | None = None
) -> InvalidArgument:
    first = violations[0] if violations else FieldViolation("", "the request is not valid")
    text = message or f"{first.field}: {first.description}"
    if not message and len(violations) > 1:
        text += f" (and {len(violations) - 1} more)"
    return InvalidArgument(text, reason="INVALID_PARAMS", violations=violations, metadata=metadata, domain=A2A_DOMAIN)


def version_not_supported(requested: str) -> FailedPrecondition:
    return FailedPrecondition(
        f"this server speaks A2A {PROTOCOL_VERSION}; send the service parameter A2A-Version: {PROTOCOL_VERSION} "
        "(an empty one means 0.3)",
        reason="VERSION_NOT_SUPPORTED",
        metadata={"supported_versions": PROTOCOL_VERSION},
        domain=A2A_DOMAIN,
    )


def check_version(value: str | None) -> None:
    """A2A §3.6: Major.Minor matters, the patch does not; an empty version is 0.3. Every 1.x
    request is served with 1.0's semantics (as the SDK's own servers do)."""
    requested = (value or "").strip() or UNVERSIONED
    major = requested.split(".", 1)[0]
    if major != PROTOCOL_VERSION.split(".", 1)[0]:
        raise version_not_supported(requested)


def requested_extensions(values: Sequence[str]) -> frozenset[str]:
    return frozenset(part.strip() for value in values for part in value.split(",") if part.strip())


def after_seq(value: str | None) -> int | None:
    """The `Nexus-After-Seq` service parameter: the last seq a client saw, or None."""
    if value is None or value.strip() == "":
        return None
    raw = value.strip()
    if not raw.isdigit() or int(raw) > MAX_SEQ:
        raise invalid_params(
            [FieldViolation("Nexus-After-Seq", "must be a whole number of at least 0 (the last seq seen)")]
        )
    return int(raw)


# -- where the interfaces are ---------------------------------------------------------------------

JSONRPC_PATH = "/a2a/v1"
AGENTS_PATH = "/a2a/agents/"
CARD_PATH = "/.well-known/agent-card.json"


@dataclass(frozen=True)
class Endpoints:
    """The gateway's A2A interfaces as clients reach them: the HTTP port's base URL (JSON-RPC,
    cards, artifact downloads) and the gRPC port's host:port."""

    http_base: str
    grpc_address: str

    @property
    def jsonrpc_url(self) -> str:
        return self.http_base + JSONRPC_PATH

    def agent_url(self, agent_id: str) -> str:
        """An agent's base URL: its card is at `<this>/.well-known/agent-card.json`."""
        return f"{self.http_base}{AGENTS_PATH}{agent_id}"

    def artifact_url(self, artifact_id: str) -> str:
        return f"{self.http_base}/v1/artifacts/{artifact_id}"

    @classmethod
    def of(
        cls, *, host: str, http_port: int, grpc_port: int, tls: bool, http_base: str, grpc_address: str
    ) -> Endpoints:
        """Configured addresses win; otherwise the gateway's own (a wildcard host reads as
        localhost: behind a proxy or in a container, configure what clients use)."""
        shown = "localhost" if host in ("0.0.0.0", "::", "") else host
        shown = f"[{shown}]" if ":" in shown else shown
        scheme = "https" if tls else "http"
        return cls(
            http_base=(http_base or f"{scheme}://{shown}:{http_port}").rstrip("/"),
            grpc_address=grpc_address or f"{shown}:{grpc_port}",
        )


# -- commands as card examples --------------------------------------------------------------------


def command_usage(trigger: str, inputs: Sequence[onto.InputField]) -> str:
    """`/scan <url> [depth=quick|standard|deep]`: required inputs positional, the others named."""
    words = [trigger]
    for field in inputs:
        value = "|".join(field.allowed_values) if field.allowed_values else field.name
        if field.required and not field.HasField("default_value"):
            words.append(f"<{value}>" if not field.allowed_values else f"<{field.name}: {value}>")
        else:
            words.append(f"[{field.name}={value}]")
    return " ".join(words)
