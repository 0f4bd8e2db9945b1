"""A2A over the gateway's task compositions: a protocol adapter, no task store of its own.

Every call runs as the caller (`Scope`: the caller's own token), so the runtime decides what the
caller may see: another user's task is NOT_FOUND there, and TASK_NOT_FOUND (A2A's, domain
`a2a-protocol.org`) here, exactly as an unknown id. A tenant (an agent's card) narrows further:
a task of another agent is not found through it either.

- A message starts a turn (`start_turn`): naming a task, it answers the task's question when the
  task waits for input (ProvideInput) or follows it up (a user message); otherwise a slash
  command runs the command (ResolveCommand → the RunCommand composition) and other text starts a
  chat with the tenant's agent (StartChat). A message without a context gets a new session.
  Everything a message creates is keyed by its messageId, so a resent message creates nothing new.
- A blocking SendMessage waits (`settled`) on the task's event stream until the turn ends: the
  task waits for input, or has ended.
- Streams (`follow`) start with the task as it stands, then relay the runtime's event stream as
  A2A events (`a2a_convert.EventMapper`). Artifacts have no events: a stream looks for new ones
  at each plan and status event, so every artifact is sent before the status that ends the task.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import aclosing

import grpc
from a2a.types import a2a_pb2 as a2a

from gateway import a2a_convert as convert
from gateway import convert as gateway_convert
from gateway import tasks
from gateway.domain import a2a_protocol as rules
from gateway.domain.titles import chat_title
from gateway.downstream import Peers, Scope, together
from gateway.pages import token_after
from nexus.kit import paging
from nexus.kit.errors import FieldViolation, NexusError, details_of
from nexus.ontology.v1 import ontology_pb2
from nexus.runtime.v1 import artifact_pb2, runtime_pb2, task_pb2

# Downstream "not found" reasons that name a field of the A2A request rather than the task.
_FIELD_OF_REASON: Mapping[str, str] = {
    "COMMAND_NOT_FOUND": "message.parts",
    "SKILL_NOT_FOUND": "message.parts",
    "AGENT_NOT_FOUND": "tenant",
    "SESSION_NOT_FOUND": "message.context_id",
}
# How far back a task's history is read, in events, at most (the newest messages are wanted).
HISTORY_WINDOW = 500
MAX_HISTORY_SCAN = 5000
MAX_ARTIFACTS = 1000
MAX_AGENTS = 1000


def a2a_error(error: grpc.aio.AioRpcError, precondition: Callable[[], NexusError] | None = None) -> BaseException:
    """A downstream failure as an A2A client understands it: NOT_FOUND is the task's (or the
    request field a reason names), INVALID_ARGUMENT is INVALID_PARAMS with the violations (the
    service's own reason and domain kept in the metadata), a failed precondition is what the
    operation says; anything else (UNAVAILABLE, RESOURCE_EXHAUSTED…) passes through unchanged."""
    info, violations = details_of(error)
    reason = info.reason if info is not None else ""
    code = error.code()
    message = error.details() or ""
    field = _FIELD_OF_REASON.get(reason)
    origin = {"nexus_reason": reason, "nexus_domain": info.domain if info is not None else ""}
    if code == grpc.StatusCode.NOT_FOUND:
        if field is None:
            return rules.task_not_found()
        return rules.invalid_params([FieldViolation(field, message)], metadata=origin)
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        if field is not None:
            violations = [FieldViolation(field, v.description) for v in violations] or [FieldViolation(field, message)]
        return rules.invalid_params(violations or [FieldViolation("", message)], message=message, metadata=origin)
    if code == grpc.StatusCode.FAILED_PRECONDITION and precondition is not None:
        return precondition()
    return error


def _ended() -> NexusError:
    return rules.unsupported("the task has ended; it accepts no more messages")


async def get_owned(peers: Peers, scope: Scope, ref: convert.TaskRef) -> task_pb2.Task:
    """The caller's task, through `ref`'s tenant (another agent's task is not found there)."""
    try:
        task = await tasks.get_task(peers, scope, ref.task_id)
    except grpc.aio.AioRpcError as error:
        raise a2a_error(error) from None
    if ref.tenant and task.agent_id != ref.tenant:
        raise rules.task_not_found()
    return task


# -- a turn: what a message starts ----------------------------------------------------------------


async def _answer(peers: Peers, scope: Scope, task: task_pb2.Task, send: convert.Send) -> task_pb2.Task:
    event = task_pb2.TaskEvent(
        role=task_pb2.EVENT_ROLE_USER,
        type=task_pb2.EVENT_TYPE_MESSAGE,
        content_text=send.text,
        client_key=rules.client_key(send.message_id),
    )
    md, timeout = scope.metadata, scope.timeout
    if task.status in rules.INTERRUPTED:
        try:
            return await peers.runtime.ProvideInput(
                runtime_pb2.ProvideInputRequest(task_id=task.task_id, answer=event), metadata=md, timeout=timeout
            )
        except grpc.aio.AioRpcError as error:
            # Answered meanwhile (this very message resent, or another): a follow-up then, which
            # the client key appends once.
            if error.code() != grpc.StatusCode.FAILED_PRECONDITION:
                raise a2a_error(error) from None
    try:
        await peers.runtime.AppendTaskEvents(
            runtime_pb2.AppendTaskEventsRequest(task_id=task.task_id, events=[event]), metadata=md, timeout=timeout
        )
    except grpc.aio.AioRpcError as error:
        raise a2a_error(error, _ended) from None
    return await tasks.get_task(peers, scope, task.task_id)


async def _session(peers: Peers, scope: Scope, send: convert.Send) -> str:
    if send.context_id:
        return send.context_id
    session = await tasks.create_session(
        peers, scope, chat_title(send.text), rules.request_id("a2a-session", send.message_id)
    )
    return session.session_id


async def start_turn(peers: Peers, scope: Scope, send: convert.Send, default_agent: str = "") -> task_pb2.Task:
    """The task a message is about, after the message took effect (see the module's doc).
    Plain text without a tenant goes to `default_agent` when the operator named one."""
    if send.task_id is not None:
        task = await get_owned(peers, scope, convert.TaskRef(send.tenant, send.task_id))
        if send.context_id and send.context_id != task.session_id:
            raise rules.invalid_params(
                [FieldViolation("message.context_id", "is not the context of the task message.task_id names")]
            )
        if task.status in rules.TERMINAL:
            raise _ended()
        return await _answer(peers, scope, task, send)
    request_id = rules.request_id("a2a-task", send.message_id)
    try:
        if send.is_command:
            resolved = await tasks.resolve_command(peers, scope, send.text)
            if send.tenant and resolved.command.agent_id != send.tenant:
                raise rules.invalid_params(
                    [
                        FieldViolation(
                            "message.parts",
                            "is a command of another agent: send it to the platform's interface (no tenant) "
                            "or to that agent's",
                        )
                    ]
                )
            session_id = await _session(peers, scope, send)
            run = gateway_convert.RunCommand(text=send.text, session_id=session_id, request_id=request_id)
            return await tasks.create_command_task(peers, scope, resolved, run)
        agent_id = send.tenant or default_agent
        if not agent_id:
            raise rules.invalid_params(
                [
                    FieldViolation(
                        "tenant",
                        "names no agent: this interface runs slash commands; other text goes to one agent, "
                        "through its card's interfaces (their tenant is the agent)",
                    )
                ]
            )
        await peers.ontology.GetAgent(
            ontology_pb2.GetAgentRequest(agent_id=agent_id), metadata=scope.metadata, timeout=scope.timeout
        )
        session_id = await _session(peers, scope, send)
        chat = gateway_convert.StartChat(
            agent_id=agent_id, text=send.text, session_id=session_id, request_id=request_id
        )
        return await tasks.start_chat(peers, scope, chat)
    except grpc.aio.AioRpcError as error:
        raise a2a_error(error) from None


def event_status(event: task_pb2.TaskEvent) -> int | None:
    """The status a status event moved its task to."""
    if event.type != task_pb2.EVENT_TYPE_STATUS or "status" not in event.metadata.fields:
        return None
    return rules.STATUS_NAMES.get(event.metadata.fields["status"].string_value)


async def settled(peers: Peers, scope: Scope, task: task_pb2.Task) -> task_pb2.Task:
    """The task once its turn has ended: it waits for input, or has ended (A2A's blocking
    SendMessage). The wait is the runtime's event stream from the task's last seq, bounded by
    the caller's deadline; a shutdown interrupts it with UNAVAILABLE (a resend of the same
    message is safe)."""
    if rules.ends_turn(task.status):
        return task
    async with aclosing(tasks.stream_task(peers, scope, task.task_id, task.last_seq)) as events:
        async for event in events:
            status = event_status(event)
            if status is not None and rules.ends_turn(status):
                break
    return await tasks.get_task(peers, scope, task.task_id)


# -- a task as A2A sees it ------------------------------------------------------------------------


async def _artifacts(peers: Peers, scope: Scope, task_id: str) -> list[artifact_pb2.Artifact]:
    """The task's artifacts, oldest first (archived ones too: A2A has no archive)."""
    found: list[artifact_pb2.Artifact] = []
    token = ""
    while len(found) < MAX_ARTIFACTS:
        page = await peers.artifacts.ListArtifacts(
            artifact_pb2.ListArtifactsRequest(
                task_id=task_id, archive_filter=runtime_pb2.ARCHIVE_FILTER_ALL, page_size=1000, page_token=token
            ),
            metadata=scope.metadata,
            timeout=scope.timeout,
        )
        found.extend(page.artifacts)
        token = page.next_page_token
        if not token:
            break
    return sorted(found, key=lambda a: (a.create_time.seconds, a.create_time.nanos, a.artifact_id))


async def _content(peers: Peers, scope: Scope, artifact: artifact_pb2.Artifact) -> bytes | None:
    """A small artifact's bytes (None: it travels as its URL; so does one deleted meanwhile)."""
    if not convert.inlined(artifact):
        return None
    chunks: list[bytes] = []
    request = artifact_pb2.DownloadArtifactRequest(artifact_id=artifact.artifact_id)
    try:
        async with aclosing(tasks.download_artifact(peers, scope, request)) as parts:
            async for part in parts:
                chunks.append(part.chunk)
    except grpc.aio.AioRpcError as error:
        if error.code() == grpc.StatusCode.NOT_FOUND:
            return None
        raise
    return b"".join(chunks)


async def _a2a_artifacts(
    peers: Peers, scope: Scope, endpoints: rules.Endpoints, found: Sequence[artifact_pb2.Artifact]
) -> list[a2a.Artifact]:
    return [
        convert.artifact_of(a, await _content(peers, scope, a), endpoints.artifact_url(a.artifact_id)) for a in found
    ]


async def _events(peers: Peers, scope: Scope, task_id: str, after: int, before: int) -> list[task_pb2.TaskEvent]:
    events: list[task_pb2.TaskEvent] = []
    token = ""
    while True:
        page = await peers.runtime.ListTaskEvents(
            runtime_pb2.ListTaskEventsRequest(
                task_id=task_id, after_seq=after, before_seq=before, page_size=HISTORY_WINDOW, page_token=token
            ),
            metadata=scope.metadata,
            timeout=scope.timeout,
        )
        events.extend(page.events)
        token = page.next_page_token
        if not token:
            return events


async def recent_messages(peers: Peers, scope: Scope, task: task_pb2.Task, count: int) -> list[a2a.Message]:
    """The task's newest `count` history messages, oldest first, read backwards a window at a
    time (a long task's early events are never read for a short history)."""
    found: list[a2a.Message] = []
    high, scanned = task.last_seq, 0
    while count > 0 and high > 0 and scanned < MAX_HISTORY_SCAN:
        low = max(0, high - HISTORY_WINDOW)
        window = await _events(peers, scope, task.task_id, low, high + 1)
        messages = [m for m in (convert.history_message(task, e) for e in window) if m is not None]
        found = messages + found
        if len(found) >= count:
            break
        high, scanned = low, scanned + HISTORY_WINDOW
    return found[-count:] if count else []


async def state_at(peers: Peers, scope: Scope, task: task_pb2.Task, seq: int) -> tuple[int, a2a.Message | None]:
    """The task's status just after event `seq`, and its latest agent message by then: where a
    resumed stream's mapping starts, so each event maps the same wherever a client resumes."""
    status: int | None = None
    question: a2a.Message | None = None
    high, scanned = seq, 0
    # Back to the latest status event; past it only for a waiting task's question.
    while (
        high > 0
        and scanned < MAX_HISTORY_SCAN
        and (status is None or (status in rules.INTERRUPTED and question is None))
    ):
        low = max(0, high - HISTORY_WINDOW)
        for event in reversed(await _events(peers, scope, task.task_id, low, high + 1)):
            if status is None:
                status = event_status(event)
            if (
                question is None
                and event.type == task_pb2.EVENT_TYPE_MESSAGE
                and event.role == task_pb2.EVENT_ROLE_ASSISTANT
            ):
                question = convert.agent_message(task, event, convert.event_parts(event))
        high, scanned = low, scanned + HISTORY_WINDOW
    return (task_pb2.TASK_STATUS_QUEUED if status is None else status), question


def _question(messages: Sequence[a2a.Message]) -> a2a.Message | None:
    return next((m for m in reversed(messages) if m.role == a2a.ROLE_AGENT), None)


async def snapshot(
    peers: Peers,
    scope: Scope,
    endpoints: rules.Endpoints,
    task: task_pb2.Task,
    history_length: int | None,
    budget: paging.Budget,
    *,
    with_artifacts: bool = True,
) -> a2a.Task:
    """The A2A task: status (a waiting task's with its question), artifacts and the newest
    history messages, as many as fit the message (artifacts first, then history, newest kept)."""
    wanted = convert.DEFAULT_HISTORY if history_length is None else history_length
    read = max(wanted, 1) if task.status in rules.INTERRUPTED else wanted
    async with together() as calls:
        listed = calls.start(_artifacts(peers, scope, task.task_id)) if with_artifacts else None
        history = calls.start(recent_messages(peers, scope, task, read))
    messages = history.result()
    question = _question(messages) if task.status in rules.INTERRUPTED else None
    base = convert.task_of(task, question=question)
    budget.spend(base)
    artifacts = await _a2a_artifacts(peers, scope, endpoints, listed.result()) if listed is not None else []
    kept_artifacts = [a for a in artifacts if budget.take(a.ByteSize())]
    recent = messages[-wanted:] if wanted else []
    kept_history: list[a2a.Message] = []
    for message in reversed(recent):
        if not budget.take(message.ByteSize()):
            break
        kept_history.insert(0, message)
    return convert.task_of(task, artifacts=kept_artifacts, history=kept_history, question=question)


async def follow(
    peers: Peers,
    scope: Scope,
    endpoints: rules.Endpoints,
    task: task_pb2.Task,
    *,
    after_seq: int | None,
    until_turn_ends: bool,
    history_length: int | None,
    max_message_bytes: int,
) -> AsyncIterator[a2a.StreamResponse]:
    """A task's A2A stream: the task as it stands (at its last seq), then every event after
    `after_seq` (a resuming client's last seq) or after the snapshot. It ends when the task ends
    (the runtime's stream does), or, for a turn, when the task waits for input."""
    if after_seq is not None and after_seq > task.last_seq:
        raise rules.invalid_params([FieldViolation("Nexus-After-Seq", "is past the task's last event")])
    first = await snapshot(peers, scope, endpoints, task, history_length, paging.Budget(max_message_bytes))
    yield a2a.StreamResponse(task=first)
    if until_turn_ends and after_seq is None and rules.ends_turn(task.status):
        return
    sent = {artifact.artifact_id for artifact in first.artifacts}
    start = task.last_seq if after_seq is None else after_seq
    if start == task.last_seq:
        status: int = task.status
        question = first.status.message if first.status.HasField("message") else None
    else:
        status, question = await state_at(peers, scope, task, start)
    mapper = convert.EventMapper(task, status, question)
    async with aclosing(tasks.stream_task(peers, scope, task.task_id, start)) as events:
        async for event in events:
            if event.type in (task_pb2.EVENT_TYPE_PLAN, task_pb2.EVENT_TYPE_STATUS):
                new = [a for a in await _artifacts(peers, scope, task.task_id) if a.artifact_id not in sent]
                for artifact in await _a2a_artifacts(peers, scope, endpoints, new):
                    sent.add(artifact.artifact_id)
                    yield convert.artifact_update(task, artifact, event.seq - 1)
            mapped = mapper.map(event)
            if mapped is not None:
                yield mapped
            moved = event_status(event)
            if until_turn_ends and moved is not None and rules.ends_turn(moved):
                return


async def cancel(
    peers: Peers, scope: Scope, endpoints: rules.Endpoints, ref: convert.TaskRef, budget: paging.Budget
) -> a2a.Task:
    """Cancel is idempotent: a cancelled task answers as it is; a finished or failed one is
    TASK_NOT_CANCELABLE."""
    task = await get_owned(peers, scope, ref)
    if task.status in rules.TERMINAL and task.status != task_pb2.TASK_STATUS_CANCELLED:
        raise rules.task_not_cancelable()
    if task.status != task_pb2.TASK_STATUS_CANCELLED:
        try:
            task = await tasks.cancel_task(peers, scope, task.task_id, "cancelled through A2A")
        except grpc.aio.AioRpcError as error:
            raise a2a_error(error, rules.task_not_cancelable) from None
    return await snapshot(peers, scope, endpoints, task, ref.history_length, budget)


async def list_tasks(
    peers: Peers, scope: Scope, endpoints: rules.Endpoints, wanted: convert.Tasks, budget: paging.Budget
) -> a2a.ListTasksResponse:
    """One page of the caller's tasks (the runtime's order: pinned first, then by last activity),
    as many as fit the message; page_size is how many it holds, total_size counts the tasks of
    this page and the earlier ones."""
    if wanted.statuses == ():
        return a2a.ListTasksResponse(page_size=0, total_size=wanted.served)

    async def fetch(token: str, size: int) -> tuple[Sequence[task_pb2.Task], str]:
        request = runtime_pb2.ListTasksRequest(
            page_size=size,
            page_token=token,
            statuses=wanted.statuses or (),  # type: ignore[arg-type]
            archive_filter=runtime_pb2.ARCHIVE_FILTER_ALL,
            agent_id=wanted.tenant,
            session_id=wanted.context_id,
        )
        page = await peers.runtime.ListTasks(request, metadata=scope.metadata, timeout=scope.timeout)
        return page.tasks, page.next_page_token

    try:
        items, next_token = await fetch(wanted.runtime_token, wanted.page_size)
    except grpc.aio.AioRpcError as error:
        raise a2a_error(error) from None
    page: list[a2a.Task] = []
    after = wanted.updated_after
    for consumed, task in enumerate(items):
        if after is not None and (task.update_time.seconds, task.update_time.nanos) < (after.seconds, after.nanos):
            continue
        if wanted.history_length or wanted.include_artifacts:
            entry = await snapshot(
                peers,
                scope,
                endpoints,
                task,
                wanted.history_length,
                paging.Budget(budget.left, reserved=0),
                with_artifacts=wanted.include_artifacts,
            )
        else:
            entry = convert.task_of(task)
        if not budget.take(entry.ByteSize()):
            next_token = await token_after(fetch, wanted.runtime_token, consumed)
            break
        page.append(entry)
    served = wanted.served + len(page)
    return a2a.ListTasksResponse(
        tasks=page,
        next_page_token=convert.tasks_token(wanted, next_token, served),
        # The conformance kit reads "the page size used for this response" as what it holds.
        page_size=len(page),
        total_size=served,
    )


# -- cards ----------------------------------------------------------------------------------------


async def agent_of(peers: Peers, scope: Scope, agent_id: str) -> ontology_pb2.Agent:
    return await peers.ontology.GetAgent(
        ontology_pb2.GetAgentRequest(agent_id=agent_id), metadata=scope.metadata, timeout=scope.timeout
    )


async def agents(peers: Peers, scope: Scope) -> list[ontology_pb2.Agent]:
    """Every agent the caller sees (agents are system-wide; a few at most)."""
    found: list[ontology_pb2.Agent] = []
    token = ""
    while len(found) < MAX_AGENTS:
        page = await peers.ontology.ListAgents(
            ontology_pb2.ListAgentsRequest(page_size=1000, page_token=token),
            metadata=scope.metadata,
            timeout=scope.timeout,
        )
        found.extend(page.agents)
        token = page.next_page_token
        if not token:
            break
    return found


async def extended_card(
    peers: Peers, scope: Scope, endpoints: rules.Endpoints, version: str, tenant: str, budget: paging.Budget
) -> a2a.AgentCard:
    """The card for the caller: an agent's (tenant), or the platform's with every agent's
    commands, as many agents as fit the message."""
    if tenant:
        return convert.agent_card(endpoints, await agent_of(peers, scope, tenant))
    listed = await agents(peers, scope)
    card = convert.platform_card(endpoints, version)
    budget.spend(card)
    kept: list[ontology_pb2.Agent] = []
    for agent in listed:
        if not budget.take(agent.capabilities_snapshot.ByteSize()):
            break
        kept.append(agent)
    return convert.platform_card(endpoints, version, kept)
