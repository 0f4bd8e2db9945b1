"""Tasks: running a command, starting a chat, answering, cancelling, the event stream proxy and
the sidebar. Every call runs as the caller (the services decide what the caller may touch)."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator

from gateway import convert
from gateway.domain import titles
from gateway.downstream import Peers, Scope, together
from gateway.tickets import TicketSealer
from nexus.contract.plans import first_plan
from nexus.gateway.v1 import gateway_pb2 as pb
from nexus.kit.auth import caller
from nexus.ontology.v1 import ontology_pb2
from nexus.runtime.v1 import artifact_pb2, runtime_pb2, session_pb2, task_pb2, workspace_pb2

# The client key of StartChat's first message: a retried StartChat (same request_id, so the same
# task) appends it once.
FIRST_MESSAGE_KEY = "gateway:start-chat"
# GetSidebar shows at most this many pinned tasks.
MAX_PINNED = 100
MAX_SIDEBAR_PAGES = 5


async def run_command(peers: Peers, scope: Scope, run: convert.RunCommand) -> task_pb2.Task:
    """Resolve → create the task with its plan and variables → the task. A command line that
    does not resolve fails with the ontology's own error, violations included."""
    resolved = await peers.ontology.ResolveCommand(
        ontology_pb2.ResolveCommandRequest(text=run.text), metadata=scope.metadata, timeout=scope.timeout
    )
    task = task_pb2.Task(
        agent_id=resolved.command.agent_id,
        session_id=run.session_id,
        trigger_source=task_pb2.TRIGGER_SOURCE_SLASH_COMMAND,
        origin_skill_id=resolved.skill.id,
        title=titles.command_title(resolved.skill.name, resolved.command.trigger, run.text),
        inputs=resolved.inputs,
    )
    # The plan (the skill's steps, all pending) and one variable per input are written in the
    # task's own transaction: a worker that claims the task at once already finds them.
    request = runtime_pb2.CreateTaskRequest(
        task=task,
        request_id=run.request_id,
        initial_plan=first_plan(resolved.skill.definition.steps),
        initial_variables=resolved.inputs,
    )
    created: task_pb2.Task = await peers.runtime.CreateTask(request, metadata=scope.metadata, timeout=scope.timeout)
    return created


async def start_chat(peers: Peers, scope: Scope, chat: convert.StartChat) -> task_pb2.Task:
    """A chat_manual task, then its first user event. The text is the task's input `text` too, so
    a worker that claims the task before the event is appended still has it."""
    task = task_pb2.Task(
        agent_id=chat.agent_id,
        session_id=chat.session_id,
        trigger_source=task_pb2.TRIGGER_SOURCE_CHAT_MANUAL,
        title=titles.chat_title(chat.text),
    )
    task.inputs["text"] = chat.text
    md = scope.metadata
    created = await peers.runtime.CreateTask(
        runtime_pb2.CreateTaskRequest(task=task, request_id=chat.request_id), metadata=md, timeout=scope.timeout
    )
    first = task_pb2.TaskEvent(
        role=task_pb2.EVENT_ROLE_USER,
        type=task_pb2.EVENT_TYPE_MESSAGE,
        content_text=chat.text,
        client_key=FIRST_MESSAGE_KEY,
    )
    await peers.runtime.AppendTaskEvents(
        runtime_pb2.AppendTaskEventsRequest(task_id=created.task_id, events=[first]), metadata=md, timeout=scope.timeout
    )
    return await get_task(peers, scope, created.task_id)


async def get_task(peers: Peers, scope: Scope, task_id: str) -> task_pb2.Task:
    return await peers.runtime.GetTask(
        runtime_pb2.GetTaskRequest(task_id=task_id), metadata=scope.metadata, timeout=scope.timeout
    )


async def list_tasks(peers: Peers, scope: Scope, wanted: convert.Tasks) -> runtime_pb2.ListTasksResponse:
    request = runtime_pb2.ListTasksRequest(
        page_size=wanted.page_size,
        page_token=wanted.page_token,
        archive_filter=wanted.archive_filter,  # type: ignore[arg-type]
        session_id=wanted.session_id,
    )
    return await peers.runtime.ListTasks(request, metadata=scope.metadata, timeout=scope.timeout)


async def update_task(peers: Peers, scope: Scope, update: convert.TaskUpdate) -> task_pb2.Task:
    return await peers.runtime.UpdateTask(
        runtime_pb2.UpdateTaskRequest(task=update.task, update_mask=update.mask),
        metadata=scope.metadata,
        timeout=scope.timeout,
    )


async def stream_task(peers: Peers, scope: Scope, task_id: str, after_seq: int) -> AsyncIterator[task_pb2.TaskEvent]:
    """The runtime's stream, event for event. The downstream call is cancelled whenever this
    generator stops early: the client cancelled, its deadline passed, or the gateway drains for
    shutdown. The runtime's end (OK) or error (its status, unchanged) reaches the client."""
    call = peers.runtime.StreamTaskEvents(
        runtime_pb2.StreamTaskEventsRequest(task_id=task_id, after_seq=after_seq),
        metadata=scope.metadata,
        timeout=scope.stream_timeout,
    )
    try:
        async for event in call:
            yield event
    finally:
        call.cancel()


async def stream_ticket(peers: Peers, scope: Scope, sealer: TicketSealer, task_id: str) -> pb.StreamTicket:
    """A ticket for one of the caller's tasks: the runtime answers NOT_FOUND for anyone else's, so
    a ticket is never minted for a task the caller could not stream."""
    await get_task(peers, scope, task_id)
    principal = caller()
    ticket, expires_at = sealer.mint(
        token=principal.token, task_id=task_id, user_id=principal.user_id, token_expires_at=principal.expires_at
    )
    reply = pb.StreamTicket(ticket=ticket, events_path=f"/v1/tasks/{task_id}/events")
    reply.expire_time.FromNanoseconds(int(expires_at * 1e9))
    return reply


async def submit_input(peers: Peers, scope: Scope, task_id: str, text: str) -> task_pb2.Task:
    answer = task_pb2.TaskEvent(role=task_pb2.EVENT_ROLE_USER, type=task_pb2.EVENT_TYPE_MESSAGE, content_text=text)
    return await peers.runtime.ProvideInput(
        runtime_pb2.ProvideInputRequest(task_id=task_id, answer=answer), metadata=scope.metadata, timeout=scope.timeout
    )


async def cancel_task(peers: Peers, scope: Scope, task_id: str, reason: str) -> task_pb2.Task:
    return await peers.runtime.CancelTask(
        runtime_pb2.CancelTaskRequest(task_id=task_id, reason=reason), metadata=scope.metadata, timeout=scope.timeout
    )


async def sidebar_tasks(peers: Peers, scope: Scope, recent: int) -> tuple[list[task_pb2.Task], list[task_pb2.Task]]:
    """Pinned and recent tasks, archived ones hidden. ListTasks serves pinned tasks first, then the
    rest by last activity, so one page usually holds both; more pages are read (a few at most)
    only while pinned tasks crowd the recent ones out."""
    pinned: list[task_pb2.Task] = []
    unpinned: list[task_pb2.Task] = []
    token = ""
    for _ in range(MAX_SIDEBAR_PAGES):
        page = await peers.runtime.ListTasks(
            runtime_pb2.ListTasksRequest(page_size=MAX_PINNED + recent, page_token=token),
            metadata=scope.metadata,
            timeout=scope.timeout,
        )
        for task in page.tasks:
            (pinned if task.is_pinned else unpinned).append(task)
        token = page.next_page_token
        if not token or len(unpinned) >= recent:
            break
    return pinned[:MAX_PINNED], unpinned[:recent]


def public_artifact(artifact: artifact_pb2.Artifact) -> artifact_pb2.Artifact:
    """An artifact as clients see it: where the runtime keeps its bytes (`local:sha256/…`) is the
    runtime's business; clients fetch the bytes through DownloadArtifact."""
    artifact.ClearField("storage_uri")
    return artifact


async def pinned_artifacts(peers: Peers, scope: Scope) -> list[artifact_pb2.Artifact]:
    """The caller's pinned artifacts: ListArtifacts across tasks serves pinned ones first and
    hides archived ones (and those of archived tasks)."""
    page = await peers.artifacts.ListArtifacts(
        artifact_pb2.ListArtifactsRequest(page_size=MAX_PINNED), metadata=scope.metadata, timeout=scope.timeout
    )
    return [public_artifact(a) for a in itertools.takewhile(lambda a: a.is_pinned, page.artifacts)]


async def list_artifacts(peers: Peers, scope: Scope, wanted: convert.Artifacts) -> artifact_pb2.ListArtifactsResponse:
    request = artifact_pb2.ListArtifactsRequest(
        task_id=wanted.task_id, page_size=wanted.page_size, page_token=wanted.page_token
    )
    page = await peers.artifacts.ListArtifacts(request, metadata=scope.metadata, timeout=scope.timeout)
    for artifact in page.artifacts:
        public_artifact(artifact)
    return page


async def download_artifact(
    peers: Peers, scope: Scope, request: artifact_pb2.DownloadArtifactRequest
) -> AsyncIterator[artifact_pb2.DownloadArtifactResponse]:
    """The runtime's download, chunk for chunk (each at most 1 MiB, under the message limit); the
    metadata in the first message without its storage URI. Cancelled downstream when this stops."""
    call = peers.artifacts.DownloadArtifact(request, metadata=scope.metadata, timeout=scope.stream_timeout)
    try:
        async for part in call:
            if part.HasField("artifact"):
                public_artifact(part.artifact)
            yield part
    finally:
        call.cancel()


async def update_artifact(peers: Peers, scope: Scope, update: convert.ArtifactUpdate) -> artifact_pb2.Artifact:
    updated = await peers.artifacts.UpdateArtifact(
        artifact_pb2.UpdateArtifactRequest(artifact=update.artifact, update_mask=update.mask),
        metadata=scope.metadata,
        timeout=scope.timeout,
    )
    return public_artifact(updated)


async def list_sessions(
    peers: Peers, scope: Scope, page_size: int, page_token: str
) -> session_pb2.ListSessionsResponse:
    return await peers.sessions.ListSessions(
        session_pb2.ListSessionsRequest(page_size=page_size, page_token=page_token),
        metadata=scope.metadata,
        timeout=scope.timeout,
    )


async def create_session(peers: Peers, scope: Scope, title: str, request_id: str) -> session_pb2.Session:
    return await peers.sessions.CreateSession(
        session_pb2.CreateSessionRequest(session=session_pb2.Session(title=title), request_id=request_id),
        metadata=scope.metadata,
        timeout=scope.timeout,
    )


async def sidebar(peers: Peers, scope: Scope, recent: int) -> pb.GetSidebarResponse:
    async with together() as calls:
        tasks = calls.start(sidebar_tasks(peers, scope, recent))
        artifacts = calls.start(pinned_artifacts(peers, scope))
    pinned, recent_tasks = tasks.result()
    return pb.GetSidebarResponse(pinned_tasks=pinned, recent_tasks=recent_tasks, pinned_artifacts=artifacts.result())


async def search_memories(
    peers: Peers, scope: Scope, search: convert.Search
) -> workspace_pb2.SearchTaskMemoriesResponse:
    request = workspace_pb2.SearchTaskMemoriesRequest(
        query=search.query, page_size=search.page_size, page_token=search.page_token
    )
    return await peers.workspace.SearchTaskMemories(request, metadata=scope.metadata, timeout=scope.timeout)
