"""Tasks: running a command, starting a chat, answering, cancelling, the event stream proxy and
the sidebar. Every call runs as the caller (the services decide what the caller may touch)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from dataclasses import replace

from gateway import convert
from gateway.domain import titles
from gateway.downstream import Peers, Scope, together
from gateway.pages import Fetch, token_after
from gateway.tickets import TicketSealer
from nexus.contract.plans import first_plan
from nexus.gateway.v1 import gateway_pb2 as pb
from nexus.kit import paging
from nexus.kit.auth import caller
from nexus.ontology.v1 import ontology_pb2
from nexus.runtime.v1 import artifact_pb2, runtime_pb2, session_pb2, task_pb2, workspace_pb2

# The client key of StartChat's first message: a retried StartChat (same request_id, so the same
# task) appends it once.
FIRST_MESSAGE_KEY = "gateway:start-chat"
# Pages of one list a sidebar page reads at most (past the cap of pinned tasks, say); the next
# sidebar page continues after them.
MAX_SIDEBAR_PAGES = 5


async def run_command(peers: Peers, scope: Scope, run: convert.RunCommand) -> task_pb2.Task:
    """Resolve → create the task with its plan and variables → the task. A command line that
    does not resolve fails with the ontology's own error, violations included."""
    return await create_command_task(peers, scope, await resolve_command(peers, scope, run.text), run)


async def resolve_command(peers: Peers, scope: Scope, text: str) -> ontology_pb2.ResolveCommandResponse:
    return await peers.ontology.ResolveCommand(
        ontology_pb2.ResolveCommandRequest(text=text), metadata=scope.metadata, timeout=scope.timeout
    )


async def create_command_task(
    peers: Peers, scope: Scope, resolved: ontology_pb2.ResolveCommandResponse, run: convert.RunCommand
) -> task_pb2.Task:
    """The task of a resolved command line, with the skill's plan and the inputs as variables."""
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


async def stream_task(
    peers: Peers, scope: Scope, task_id: str, after_seq: int
) -> AsyncGenerator[task_pb2.TaskEvent, None]:
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


async def _sidebar_tasks(
    fetch: Fetch[task_pb2.Task],
    cursor: convert.SidebarCursor,
    recent: int,
    budget: paging.Budget,
    first: tuple[Sequence[task_pb2.Task], str] | None,
) -> tuple[list[task_pb2.Task], list[task_pb2.Task], convert.SidebarCursor]:
    """Pinned and recent tasks, archived ones hidden, from where `cursor` left off. ListTasks
    serves pinned tasks first, then the rest by last activity, so one page usually holds both;
    more pages are read (a few at most) only while pinned tasks past the cap crowd the recent
    ones out. The tasks end early when the budget is spent."""
    pinned: list[task_pb2.Task] = []
    unpinned: list[task_pb2.Task] = []
    token, n_pinned, n_recent = cursor.tasks or "", cursor.pinned_tasks, cursor.recent_tasks

    def after(next_token: str | None) -> convert.SidebarCursor:
        return replace(cursor, tasks=next_token, pinned_tasks=n_pinned, recent_tasks=n_recent)

    page = first
    for _ in range(MAX_SIDEBAR_PAGES):
        items, next_token = page or await fetch(token, convert.MAX_PINNED + recent)
        page = None
        for consumed, task in enumerate(items):
            if not task.is_pinned and n_recent >= recent:
                return pinned, unpinned, after(None)
            if task.is_pinned and n_pinned >= convert.MAX_PINNED:
                continue  # past the cap: not shown
            if not budget.take(task.ByteSize()):
                return pinned, unpinned, after(await token_after(fetch, token, consumed))
            if task.is_pinned:
                pinned.append(task)
                n_pinned += 1
            else:
                unpinned.append(task)
                n_recent += 1
        if not next_token or n_recent >= recent:
            return pinned, unpinned, after(None)
        token = next_token
    return pinned, unpinned, after(token)


def public_artifact(artifact: artifact_pb2.Artifact) -> artifact_pb2.Artifact:
    """An artifact as clients see it: where the runtime keeps its bytes (`local:sha256/…`) is the
    runtime's business; clients fetch the bytes through DownloadArtifact."""
    artifact.ClearField("storage_uri")
    return artifact


async def _pinned_artifacts(
    fetch: Fetch[artifact_pb2.Artifact],
    cursor: convert.SidebarCursor,
    budget: paging.Budget,
    first: tuple[Sequence[artifact_pb2.Artifact], str] | None,
) -> tuple[list[artifact_pb2.Artifact], convert.SidebarCursor]:
    """The caller's pinned artifacts from where `cursor` left off: ListArtifacts across tasks
    serves pinned ones first and hides archived ones (and those of archived tasks)."""
    kept: list[artifact_pb2.Artifact] = []
    token, count = cursor.artifacts or "", cursor.pinned_artifacts

    def after(next_token: str | None) -> convert.SidebarCursor:
        return replace(cursor, artifacts=next_token, pinned_artifacts=count)

    page = first
    for _ in range(MAX_SIDEBAR_PAGES):
        items, next_token = page or await fetch(token, convert.MAX_PINNED - count)
        page = None
        for consumed, artifact in enumerate(items):
            if not artifact.is_pinned or count >= convert.MAX_PINNED:
                return kept, after(None)
            if not budget.take(artifact.ByteSize()):
                return kept, after(await token_after(fetch, token, consumed))
            kept.append(public_artifact(artifact))
            count += 1
        if not next_token or count >= convert.MAX_PINNED:
            return kept, after(None)
        token = next_token
    return kept, after(token)


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
) -> AsyncGenerator[artifact_pb2.DownloadArtifactResponse, None]:
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


async def sidebar(
    peers: Peers, scope: Scope, recent: int, cursor: convert.SidebarCursor, budget: paging.Budget
) -> tuple[pb.GetSidebarResponse, convert.SidebarCursor]:
    """One page of the sidebar from `cursor`, and where the next one continues."""

    async def list_tasks(token: str, size: int) -> tuple[Sequence[task_pb2.Task], str]:
        request = runtime_pb2.ListTasksRequest(page_size=size, page_token=token)
        page = await peers.runtime.ListTasks(request, metadata=scope.metadata, timeout=scope.timeout)
        return page.tasks, page.next_page_token

    async def list_artifacts(token: str, size: int) -> tuple[Sequence[artifact_pb2.Artifact], str]:
        request = artifact_pb2.ListArtifactsRequest(page_size=size, page_token=token)
        page = await peers.artifacts.ListArtifacts(request, metadata=scope.metadata, timeout=scope.timeout)
        return page.artifacts, page.next_page_token

    # The first page of each list at once: a sidebar that fits one message needs no other read.
    async with together() as calls:
        tasks = None if cursor.tasks is None else calls.start(list_tasks(cursor.tasks, convert.MAX_PINNED + recent))
        artifacts = (
            None
            if cursor.artifacts is None
            else calls.start(list_artifacts(cursor.artifacts, convert.MAX_PINNED - cursor.pinned_artifacts))
        )
    pinned: list[task_pb2.Task] = []
    recent_tasks: list[task_pb2.Task] = []
    pinned_artifacts: list[artifact_pb2.Artifact] = []
    if tasks is not None:
        pinned, recent_tasks, cursor = await _sidebar_tasks(list_tasks, cursor, recent, budget, tasks.result())
    if artifacts is not None:
        pinned_artifacts, cursor = await _pinned_artifacts(list_artifacts, cursor, budget, artifacts.result())
    response = pb.GetSidebarResponse(pinned_tasks=pinned, recent_tasks=recent_tasks, pinned_artifacts=pinned_artifacts)
    return response, cursor


async def search_memories(
    peers: Peers, scope: Scope, search: convert.Search
) -> workspace_pb2.SearchTaskMemoriesResponse:
    request = workspace_pb2.SearchTaskMemoriesRequest(
        query=search.query, page_size=search.page_size, page_token=search.page_token
    )
    return await peers.workspace.SearchTaskMemories(request, metadata=scope.metadata, timeout=scope.timeout)
