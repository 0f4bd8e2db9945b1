"""A2A ↔ Nexus values: the checks of every A2A request field (DESIGN §5, with A2A's error names),
and Nexus tasks, events, artifacts and agents as A2A tasks, stream events and agent cards.

An A2A task is a Nexus task; its `contextId` is the task's session. Nexus events become A2A
stream events in seq order, each with its seq in the event-seq extension's metadata:

| Nexus event | A2A |
|---|---|
| status | TaskStatusUpdateEvent with the mapped state (waiting_input carries the question) |
| assistant, tool or system message | TaskStatusUpdateEvent (the current state) with an agent Message |
| nexus_render, tool_use, tool_result | the same, the Message holding a data part (media types below) |
| user message, plan | nothing on a stream (user messages are in the task's history) |
| message_delta (the live-output change) | `delta_update`, which that change fills |

Artifacts become A2A artifacts: their bytes inline when small (text as a text part), else a URL
of the HTTP port's download route, which takes the same bearer token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from a2a.types import a2a_pb2 as a2a
from google.protobuf import struct_pb2, timestamp_pb2

from gateway.domain import a2a_protocol as rules
from gateway.domain.titles import shorten
from nexus.kit import paging
from nexus.kit.errors import FieldViolation
from nexus.kit.validation import JSON, Violations, struct_to_dict
from nexus.ontology.v1 import ontology_pb2 as onto
from nexus.runtime.v1 import artifact_pb2, task_pb2

MAX_ID = 200
MAX_TEXT = 100_000
MAX_PAGE_TOKEN = 2048
MAX_LIST_ITEMS = 64
MAX_LIST_ITEM = 2048
DEFAULT_HISTORY = 20
MAX_HISTORY = 200
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100
# Artifacts up to this size travel inline; larger ones as a download URL.
INLINE_ARTIFACT_BYTES = 64 * 1024
TEXT_MEDIA = "text/plain"
RENDER_MEDIA = "application/vnd.nexus.render+json"
TOOL_USE_MEDIA = "application/vnd.nexus.tool-use+json"
TOOL_RESULT_MEDIA = "application/vnd.nexus.tool-result+json"
INPUT_MODES = (TEXT_MEDIA,)
OUTPUT_MODES = (TEXT_MEDIA, "application/json", "application/octet-stream")
_TEXTUAL = ("application/json", "application/xml", "application/yaml", "application/x-yaml")


# -- requests -------------------------------------------------------------------------------------


def _tenant(v: Violations, value: str) -> str:
    """A tenant names an agent (its card's interfaces carry it); empty means the platform."""
    return v.slug("tenant", value, required=False)


def _history(v: Violations, field: str, message: a2a.GetTaskRequest | a2a.SendMessageConfiguration) -> int | None:
    if not message.HasField("history_length"):
        return None
    if message.history_length < 0:
        v.add(field, "must not be negative")
        return 0
    return min(message.history_length, MAX_HISTORY)


def _strings(v: Violations, field: str, values: Sequence[str]) -> None:
    if len(values) > MAX_LIST_ITEMS:
        v.add(field, f"must hold at most {MAX_LIST_ITEMS} entries")
        return
    for i, value in enumerate(values):
        v.text(f"{field}[{i}]", value, max_len=MAX_LIST_ITEM)


def _raise(v: Violations) -> None:
    if v:
        raise rules.invalid_params(v.items)


_NO_TASK = ""


def _task_id(v: Violations, field: str, value: str, *, required: bool = True) -> str | None:
    """A2A's ids are opaque strings: one that cannot be stored (NUL, oversized) is INVALID_PARAMS,
    one that is no Nexus id (not a UUID) names no task (`_NO_TASK`: TASK_NOT_FOUND once the
    request's other fields are checked), like an unknown UUID does."""
    if not value:
        if required:
            v.add(field, "is required")
        return None
    before = len(v.items)
    v.text(field, value, max_len=MAX_ID)
    if len(v.items) > before:
        return None
    checked = Violations()
    task_id = checked.uuid(field, value)
    return _NO_TASK if task_id is None else task_id


def _found(task_id: str | None) -> str:
    if task_id == _NO_TASK or task_id is None:
        raise rules.task_not_found()
    return task_id


@dataclass(frozen=True)
class Send:
    """What an A2A message asks for: answer or follow up a task (task_id), or start one."""

    tenant: str
    message_id: str
    text: str
    task_id: str | None
    context_id: str | None
    return_immediately: bool
    history_length: int | None

    @property
    def is_command(self) -> bool:
        return self.text.startswith("/")


def send(request: a2a.SendMessageRequest) -> Send:
    """Text parts only (the cards' input mode is text/plain): a file or data part is
    CONTENT_TYPE_NOT_SUPPORTED, a field that is malformed INVALID_PARAMS, every one named."""
    v = Violations()
    unsupported: list[FieldViolation] = []
    tenant = _tenant(v, request.tenant)
    message = request.message
    if not request.HasField("message"):
        v.add("message", "is required")
    v.text("message.message_id", message.message_id, max_len=MAX_ID, required=True)
    if message.role != a2a.ROLE_USER:
        v.enum("message.role", message.role, a2a.Role.DESCRIPTOR, allowed=[a2a.ROLE_USER])
        if message.role == a2a.ROLE_AGENT:
            v.add("message.role", "a client's message has role ROLE_USER")
    texts: list[str] = []
    if request.HasField("message") and not message.parts:
        v.add("message.parts", "must hold at least one part")
    for i, part in enumerate(message.parts):
        field = f"message.parts[{i}]"
        kind = part.WhichOneof("content")
        if kind == "text":
            texts.append(v.text(f"{field}.text", part.text, max_len=MAX_TEXT))
            if part.media_type and part.media_type != TEXT_MEDIA:
                unsupported.append(FieldViolation(f"{field}.media_type", f"only {TEXT_MEDIA} text is accepted"))
        elif kind is None:
            v.add(field, "holds no content (text, raw, url or data)")
        else:
            unsupported.append(FieldViolation(field, f"only text parts are accepted ({TEXT_MEDIA}), not {kind}"))
    text = "\n".join(texts).strip()
    if texts and not text and not v:
        v.add("message.parts", "hold no text")
    if len(text) > MAX_TEXT:
        v.add("message.parts", f"must hold at most {MAX_TEXT} characters of text in all")
    task_id = _task_id(v, "message.task_id", message.task_id, required=False)
    context_id = v.uuid("message.context_id", message.context_id, required=False)
    v.struct("message.metadata", message.metadata)
    v.struct("metadata", request.metadata)
    _strings(v, "message.extensions", message.extensions)
    _strings(v, "message.reference_task_ids", message.reference_task_ids)
    config = request.configuration
    history = _history(v, "configuration.history_length", config)
    _strings(v, "configuration.accepted_output_modes", config.accepted_output_modes)
    if config.HasField("task_push_notification_config"):
        raise rules.push_not_supported()
    _raise(v)
    if unsupported:
        raise rules.content_type_not_supported(unsupported)
    if task_id == _NO_TASK:
        raise rules.task_not_found()
    return Send(
        tenant=tenant,
        message_id=message.message_id,
        text=text,
        task_id=task_id,
        context_id=context_id,
        return_immediately=config.return_immediately,
        history_length=history,
    )


@dataclass(frozen=True)
class TaskRef:
    tenant: str
    task_id: str
    history_length: int | None = None


def get_task(request: a2a.GetTaskRequest) -> TaskRef:
    v = Violations()
    tenant = _tenant(v, request.tenant)
    task_id = _task_id(v, "id", request.id)
    history = _history(v, "history_length", request)
    _raise(v)
    return TaskRef(tenant, _found(task_id), history)


def cancel_task(request: a2a.CancelTaskRequest) -> TaskRef:
    v = Violations()
    tenant = _tenant(v, request.tenant)
    task_id = _task_id(v, "id", request.id)
    v.struct("metadata", request.metadata)
    _raise(v)
    return TaskRef(tenant, _found(task_id))


def subscribe(request: a2a.SubscribeToTaskRequest) -> TaskRef:
    v = Violations()
    tenant = _tenant(v, request.tenant)
    task_id = _task_id(v, "id", request.id)
    _raise(v)
    return TaskRef(tenant, _found(task_id))


def card_tenant(request: a2a.GetExtendedAgentCardRequest) -> str:
    v = Violations()
    tenant = _tenant(v, request.tenant)
    _raise(v)
    return tenant


@dataclass(frozen=True)
class Tasks:
    """A ListTasks request: the runtime's filters, where its pages continue, and how many tasks
    earlier pages served (so total_size counts them)."""

    tenant: str
    context_id: str
    statuses: tuple[int, ...] | None
    page_size: int
    runtime_token: str
    served: int
    history_length: int
    updated_after: timestamp_pb2.Timestamp | None
    include_artifacts: bool
    fingerprint: str


def list_tasks(request: a2a.ListTasksRequest, user_id: str) -> Tasks:
    """A2A's page sizes are 1-100 (50 by default); `status` REJECTED or AUTH_REQUIRED matches
    nothing (Nexus tasks never are)."""
    v = Violations()
    tenant = _tenant(v, request.tenant)
    # A context that is no Nexus session id (not a UUID) matches no task: an empty page.
    v.text("context_id", request.context_id, max_len=MAX_ID)
    context_id = Violations().uuid("context_id", request.context_id, required=False) or ""
    no_context = bool(request.context_id) and not context_id
    v.enum("status", request.status, a2a.TaskState.DESCRIPTOR, required=False)
    statuses = None if request.status == a2a.TASK_STATE_UNSPECIFIED else rules.STATUSES_OF_STATE.get(request.status, ())
    if no_context:
        statuses = ()
    page_size = DEFAULT_PAGE_SIZE
    if request.HasField("page_size"):
        page_size = request.page_size
        v.check(1 <= page_size <= MAX_PAGE_SIZE, "page_size", f"must be from 1 to {MAX_PAGE_SIZE}")
    v.text("page_token", request.page_token, max_len=MAX_PAGE_TOKEN)
    history = 0
    if request.HasField("history_length"):
        history = min(request.history_length, MAX_HISTORY)
        v.check(request.history_length >= 0, "history_length", "must not be negative")
    after: timestamp_pb2.Timestamp | None = None
    if request.HasField("status_timestamp_after"):
        after = request.status_timestamp_after
        valid = 0 <= after.nanos < 1_000_000_000 and -62135596800 <= after.seconds <= 253402300799
        v.check(valid, "status_timestamp_after", "must be a valid timestamp")
    _raise(v)
    fingerprint = paging.query_fingerprint("a2a-tasks", user_id, tenant, context_id, request.status, after)
    runtime_token, served = "", 0
    cursor = paging.decode(request.page_token, fingerprint)
    if cursor is not None:
        if len(cursor) != 2 or not isinstance(cursor[0], str) or not isinstance(cursor[1], int):
            raise paging.invalid_token()
        runtime_token, served = cursor[0], cursor[1]
    return Tasks(
        tenant=tenant,
        context_id=context_id,
        statuses=statuses,
        page_size=page_size,
        runtime_token=runtime_token,
        served=served,
        history_length=history,
        updated_after=after,
        include_artifacts=request.include_artifacts,
        fingerprint=fingerprint,
    )


def tasks_token(wanted: Tasks, runtime_token: str, served: int) -> str:
    """The A2A page token after a page: the runtime's, and the count served so far."""
    return paging.encode([runtime_token, served], wanted.fingerprint) if runtime_token else ""


# -- tasks, events, artifacts ---------------------------------------------------------------------


def seq_metadata(seq: int, extra: dict[str, JSON] | None = None) -> struct_pb2.Struct:
    metadata = struct_pb2.Struct()
    metadata.update({rules.SEQ_EXTENSION: {"seq": seq}, **(extra or {})})
    return metadata


def seq_of(metadata: struct_pb2.Struct) -> int | None:
    """The seq an A2A object carries (the event-seq extension), or None."""
    value = struct_to_dict(metadata).get(rules.SEQ_EXTENSION)
    seq = value.get("seq") if isinstance(value, dict) else None
    return seq if isinstance(seq, int) else None


def text_part(text: str) -> a2a.Part:
    return a2a.Part(text=text, media_type=TEXT_MEDIA)


def data_part(value: dict[str, JSON], media_type: str) -> a2a.Part:
    part = a2a.Part(media_type=media_type)
    part.data.struct_value.update(value)
    return part


def event_parts(event: task_pb2.TaskEvent) -> list[a2a.Part]:
    if event.type == task_pb2.EVENT_TYPE_NEXUS_RENDER:
        parts = [data_part(struct_to_dict(event.render_payload), RENDER_MEDIA)]
        return [text_part(event.content_text), *parts] if event.content_text else parts
    if event.type in (task_pb2.EVENT_TYPE_TOOL_USE, task_pb2.EVENT_TYPE_TOOL_RESULT):
        media = TOOL_USE_MEDIA if event.type == task_pb2.EVENT_TYPE_TOOL_USE else TOOL_RESULT_MEDIA
        return [data_part({"content_text": event.content_text, "metadata": struct_to_dict(event.metadata)}, media)]
    return [text_part(event.content_text)]


def agent_message(task: task_pb2.Task, event: task_pb2.TaskEvent, parts: Sequence[a2a.Part]) -> a2a.Message:
    return a2a.Message(
        message_id=rules.message_id(task.task_id, event.seq),
        context_id=task.session_id,
        task_id=task.task_id,
        role=a2a.ROLE_AGENT,
        parts=parts,
        metadata=seq_metadata(event.seq),
    )


def history_message(task: task_pb2.Task, event: task_pb2.TaskEvent) -> a2a.Message | None:
    """A message of the task's history: the user's and the agent's messages (not status, plan,
    render or tool events, which streams carry)."""
    if event.type != task_pb2.EVENT_TYPE_MESSAGE:
        return None
    if event.role == task_pb2.EVENT_ROLE_ASSISTANT:
        return agent_message(task, event, [text_part(event.content_text)])
    if event.role != task_pb2.EVENT_ROLE_USER:
        return None
    return a2a.Message(
        # A message an A2A client sent keeps its own id (its client key holds it).
        message_id=rules.message_id_of_key(event.client_key) or rules.message_id(task.task_id, event.seq),
        context_id=task.session_id,
        task_id=task.task_id,
        role=a2a.ROLE_USER,
        parts=[text_part(event.content_text)],
        metadata=seq_metadata(event.seq),
    )


def _status_message(task: task_pb2.Task, event: task_pb2.TaskEvent) -> a2a.Message | None:
    """A failed or cancelled status says why (the runtime's note: the error, the reason given)."""
    note = event.metadata.fields["note"].string_value if "note" in event.metadata.fields else ""
    text = f"{event.content_text}: {note}" if note else event.content_text
    return agent_message(task, event, [text_part(text)]) if text else None


class EventMapper:
    """One stream's mapping of Nexus events to A2A stream events. It remembers what a stream
    needs, and nothing else: the task's current status and its latest agent message (the
    question an input-required status carries)."""

    def __init__(self, task: task_pb2.Task, status: int, question: a2a.Message | None) -> None:
        self._task = task
        self.status = status
        self._question = question

    def _update(self, event: task_pb2.TaskEvent, message: a2a.Message | None) -> a2a.StreamResponse:
        status = a2a.TaskStatus(state=rules.state_of(self.status), timestamp=event.create_time)
        if message is not None:
            status.message.CopyFrom(message)
        update = a2a.TaskStatusUpdateEvent(
            task_id=self._task.task_id,
            context_id=self._task.session_id,
            status=status,
            metadata=seq_metadata(event.seq),
        )
        return a2a.StreamResponse(status_update=update)

    def map(self, event: task_pb2.TaskEvent) -> a2a.StreamResponse | None:
        if event.type == task_pb2.EVENT_TYPE_STATUS:
            name = event.metadata.fields["status"].string_value if "status" in event.metadata.fields else ""
            self.status = rules.STATUS_NAMES.get(name, self.status)
            message: a2a.Message | None = None
            if self.status in rules.INTERRUPTED:
                message = self._question
            elif self.status in (task_pb2.TASK_STATUS_FAILED, task_pb2.TASK_STATUS_CANCELLED):
                message = _status_message(self._task, event)
            return self._update(event, message)
        if event.type == task_pb2.EVENT_TYPE_PLAN or event.role == task_pb2.EVENT_ROLE_USER:
            return None
        if event.type in (
            task_pb2.EVENT_TYPE_MESSAGE,
            task_pb2.EVENT_TYPE_NEXUS_RENDER,
            task_pb2.EVENT_TYPE_TOOL_USE,
            task_pb2.EVENT_TYPE_TOOL_RESULT,
        ):
            said = agent_message(self._task, event, event_parts(event))
            if event.type == task_pb2.EVENT_TYPE_MESSAGE and event.role == task_pb2.EVENT_ROLE_ASSISTANT:
                self._question = said
            return self._update(event, said)
        return delta_update(self._task, event)


def delta_update(task: task_pb2.Task, event: task_pb2.TaskEvent) -> a2a.StreamResponse | None:
    """A `message_delta` event (partial assistant output) as A2A streams partial output: a
    TaskArtifactUpdateEvent with `append` for each delta of one message, `last_chunk` on the
    message that closes it. The runtime has no delta events yet; the change that adds the type
    fills this in. Until then nothing else reaches here, and nothing is sent for it."""
    return None


def is_textual(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media.startswith("text/") or media in _TEXTUAL or media.endswith("+json")


def inlined(artifact: artifact_pb2.Artifact) -> bool:
    """Whether an artifact's bytes travel inside A2A answers (else as a URL)."""
    return artifact.size_bytes <= INLINE_ARTIFACT_BYTES


def artifact_of(artifact: artifact_pb2.Artifact, content: bytes | None, url: str) -> a2a.Artifact:
    media = artifact.content_type or "application/octet-stream"
    part = a2a.Part(filename=artifact.display_name, media_type=media)
    text: str | None = None
    if content is not None and is_textual(media):
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError:
            text = None
    if text is not None:
        part.text = text
    elif content is not None:
        part.raw = content
    else:
        part.url = url
    metadata = struct_pb2.Struct()
    metadata.update({"type": artifact.type, "size_bytes": artifact.size_bytes, "sha256": artifact.sha256})
    return a2a.Artifact(artifact_id=artifact.artifact_id, name=artifact.display_name, parts=[part], metadata=metadata)


def artifact_update(task: task_pb2.Task, artifact: a2a.Artifact, seq: int) -> a2a.StreamResponse:
    """An artifact found while a stream handles event `seq + 1`: it was written before that
    event, so it carries `seq` (a client resuming after it still gets event seq + 1)."""
    update = a2a.TaskArtifactUpdateEvent(
        task_id=task.task_id,
        context_id=task.session_id,
        artifact=artifact,
        append=False,
        last_chunk=True,
        metadata=seq_metadata(seq),
    )
    return a2a.StreamResponse(artifact_update=update)


def task_of(
    task: task_pb2.Task,
    *,
    artifacts: Sequence[a2a.Artifact] = (),
    history: Sequence[a2a.Message] = (),
    question: a2a.Message | None = None,
) -> a2a.Task:
    """A Nexus task as an A2A task, at its last seq (its metadata says which)."""
    status = a2a.TaskStatus(state=rules.state_of(task.status), timestamp=task.update_time)
    if task.status in rules.INTERRUPTED and question is not None:
        status.message.CopyFrom(question)
    elif task.status == task_pb2.TASK_STATUS_FAILED and (task.error.message or task.error.reason):
        text = f"{task.error.reason}: {task.error.message}" if task.error.reason else task.error.message
        status.message.CopyFrom(
            a2a.Message(
                message_id=rules.message_id(task.task_id, task.last_seq),
                context_id=task.session_id,
                task_id=task.task_id,
                role=a2a.ROLE_AGENT,
                parts=[text_part(text)],
            )
        )
    nexus: dict[str, JSON] = {"agent_id": task.agent_id, "title": task.title}
    return a2a.Task(
        id=task.task_id,
        context_id=task.session_id,
        status=status,
        artifacts=artifacts,
        history=history,
        metadata=seq_metadata(task.last_seq, {"nexus": nexus}),
    )


# -- agent cards ----------------------------------------------------------------------------------

PLATFORM_NAME = "Nexus"
PLATFORM_DESCRIPTION = (
    "Nexus's agents over A2A. This interface runs any slash command the caller can see "
    "(`/scan https://acme.com`); plain text goes to one agent, through the interfaces of its own "
    "card at /a2a/agents/<agent_id>/.well-known/agent-card.json (their tenant names the agent). "
    "The extended card (GetExtendedAgentCard, signed in) lists every agent's commands."
)
BEARER = "bearer"


def _capabilities() -> a2a.AgentCapabilities:
    return a2a.AgentCapabilities(
        streaming=True,
        push_notifications=False,
        extended_agent_card=True,
        extensions=[a2a.AgentExtension(uri=rules.SEQ_EXTENSION, description=rules.SEQ_EXTENSION_DESCRIPTION)],
    )


def _card(endpoints: rules.Endpoints, *, name: str, description: str, version: str, tenant: str) -> a2a.AgentCard:
    """An agent's JSON-RPC interface is its own endpoint, for clients that send no tenant."""
    version_of_protocol = rules.PROTOCOL_VERSION
    jsonrpc_url = endpoints.agent_url(tenant) if tenant else endpoints.jsonrpc_url
    interfaces = [
        a2a.AgentInterface(
            url=jsonrpc_url, protocol_binding="JSONRPC", tenant=tenant, protocol_version=version_of_protocol
        ),
        a2a.AgentInterface(
            url=endpoints.grpc_address, protocol_binding="GRPC", tenant=tenant, protocol_version=version_of_protocol
        ),
    ]
    card = a2a.AgentCard(
        name=name,
        description=description,
        supported_interfaces=interfaces,
        version=version,
        capabilities=_capabilities(),
        default_input_modes=INPUT_MODES,
        default_output_modes=OUTPUT_MODES,
    )
    card.security_schemes[BEARER].http_auth_security_scheme.CopyFrom(
        a2a.HTTPAuthSecurityScheme(
            scheme="Bearer",
            bearer_format="JWT",
            description="Nexus sign-in: the access JWT that SignIn on the gateway (nexus.gateway.v1) returns.",
        )
    )
    requirement = a2a.SecurityRequirement()
    requirement.schemes[BEARER].CopyFrom(a2a.StringList())
    card.security_requirements.append(requirement)
    return card


def commands_skill() -> a2a.AgentSkill:
    return a2a.AgentSkill(
        id="slash_commands",
        name="Slash commands",
        description="Runs a slash command: the command's agent does the work as a task. The extended card lists "
        "the commands with their arguments.",
        tags=["commands"],
        examples=["/<command> <arguments>"],
        input_modes=INPUT_MODES,
    )


def _skill(agent: onto.Agent, skill: onto.SkillCapability) -> a2a.AgentSkill:
    usages = [
        rules.command_usage(command.trigger, skill.inputs)
        for command in agent.capabilities_snapshot.commands
        if command.skill_id == skill.id
    ]
    return a2a.AgentSkill(
        id=skill.id,
        name=skill.name or skill.id,
        description=skill.description or skill.name or skill.id,
        tags=[agent.id, *(field.name for field in skill.inputs)],
        examples=usages,
        input_modes=INPUT_MODES,
    )


def platform_card(endpoints: rules.Endpoints, version: str, agents: Sequence[onto.Agent] = ()) -> a2a.AgentCard:
    """The platform's card: public without `agents`; the extended card adds every command the
    caller can run here (skills with a command, tagged with their agent)."""
    card = _card(endpoints, name=PLATFORM_NAME, description=PLATFORM_DESCRIPTION, version=version, tenant="")
    card.skills.append(commands_skill())
    for agent in agents:
        commanded = {command.skill_id for command in agent.capabilities_snapshot.commands}
        card.skills.extend(_skill(agent, s) for s in agent.capabilities_snapshot.skills if s.id in commanded)
    return card


def agent_card(endpoints: rules.Endpoints, agent: onto.Agent) -> a2a.AgentCard:
    """One agent's card, from its capabilities snapshot: a chat skill, then its skills (each
    command that starts one is an example), on interfaces whose tenant is the agent."""
    snapshot = agent.capabilities_snapshot
    version = snapshot.compute_time.ToJsonString() if snapshot.HasField("compute_time") else "1"
    name = agent.name or agent.id
    card = _card(
        endpoints,
        name=name,
        description=agent.description or f"The {name} agent of Nexus.",
        version=version,
        tenant=agent.id,
    )
    if agent.avatar_url:
        card.icon_url = agent.avatar_url
    chat = a2a.AgentSkill(
        id="chat",
        name=f"Chat with {shorten(name, 80)}",
        description=f"Text that is not a slash command starts a conversation with {name}; a message naming a "
        "task answers its question or follows it up.",
        tags=["chat"],
        input_modes=INPUT_MODES,
    )
    card.skills.append(chat)
    card.skills.extend(_skill(agent, skill) for skill in snapshot.skills)
    return card
