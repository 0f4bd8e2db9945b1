"""Validation of the gateway's own request fields (DESIGN §5), and the downstream requests built
from them. The services validate again with their exact rules (password policy, email syntax,
input types…); the gateway rejects what is malformed in any case (NUL, lone surrogates, oversized
text, bad ids and page sizes) before making a downstream call, with its own field names."""

from __future__ import annotations

import re
from dataclasses import dataclass

from google.protobuf import field_mask_pb2, struct_pb2

from nexus.gateway.v1 import gateway_pb2 as pb
from nexus.kit import validation
from nexus.kit.errors import invalid
from nexus.kit.paging import Keyset
from nexus.kit.validation import Violations
from nexus.runtime.v1 import artifact_pb2, runtime_pb2, task_pb2
from nexus.user.v1 import user_pb2

# Generous bounds for fields the services check exactly; they only keep junk out of the gateway.
MAX_EMAIL = 320
MAX_PASSWORD = 1024
MAX_NICKNAME = 256
MAX_TOKEN = 4096
MAX_COMMAND_LINE = 8192
MAX_MESSAGE = 100_000
MAX_REASON = 2000
MAX_PAGE_TOKEN = 2048
MAX_PROVIDER = 200
MAX_DISPLAY_NAME = 200
MAX_PREFIX = 64
MAX_SKILL_NAME = 200
MAX_DESCRIPTION = 1000
MAX_QUERY = 200
MAX_TITLE = 500
MAX_AVATAR_URL = 2048
MAX_PRINCIPLE = 500
MAX_PRINCIPLES = 50

DEFAULT_RECENT = 20
# GetSidebar shows at most this many pinned tasks, and as many pinned artifacts.
MAX_PINNED = 100
MAX_RECENT = 100
DEFAULT_COMPLETIONS = 20
MAX_COMPLETIONS = 100

TRIGGER = re.compile(r"/[a-z][a-z0-9_-]{0,31}")
TRIGGER_HINT = "must be '/' and 1-32 characters of a-z, 0-9, '_' or '-', starting with a letter"


# -- accounts ----------------------------------------------------------------------------------


def sign_up(request: pb.SignUpRequest) -> None:
    v = Violations()
    v.text("email", request.email, max_len=MAX_EMAIL)
    v.text("password", request.password, max_len=MAX_PASSWORD)
    v.text("nickname", request.nickname, max_len=MAX_NICKNAME)
    v.raise_if_any()


def sign_in(request: pb.SignInRequest) -> None:
    v = Violations()
    v.text("email", request.email, max_len=MAX_EMAIL)
    v.text("password", request.password, max_len=MAX_PASSWORD)
    v.raise_if_any()


def refresh_token(value: str) -> str:
    v = Violations()
    v.text("refresh_token", value, max_len=MAX_TOKEN)
    v.raise_if_any()
    return value


PROFILE_FIELDS = ("nickname", "avatar_url", "preferences", "principles")


@dataclass(frozen=True)
class ProfileUpdate:
    profile: user_pb2.Profile
    mask: field_mask_pb2.FieldMask


def update_profile(request: pb.UpdateProfileRequest) -> ProfileUpdate:
    """The caller's own profile (the user id is never taken from the request)."""
    given = request.profile
    paths = validation.update_paths(request.update_mask, given, PROFILE_FIELDS)
    v = Violations()
    v.text("profile.nickname", given.nickname, max_len=MAX_NICKNAME, required="nickname" in paths)
    v.text("profile.avatar_url", given.avatar_url, max_len=MAX_AVATAR_URL)
    v.struct("profile.preferences", given.preferences)
    v.check(len(given.principles) <= MAX_PRINCIPLES, "profile.principles", f"at most {MAX_PRINCIPLES} principles")
    for i, principle in enumerate(given.principles[:MAX_PRINCIPLES]):
        v.text(f"profile.principles[{i}]", principle, max_len=MAX_PRINCIPLE)
    v.etag("profile.etag", given.etag)
    v.raise_if_any()
    profile = user_pb2.Profile(
        nickname=given.nickname, avatar_url=given.avatar_url, principles=given.principles, etag=given.etag
    )
    profile.preferences.CopyFrom(given.preferences)
    return ProfileUpdate(profile, field_mask_pb2.FieldMask(paths=sorted(paths)))


# -- tasks -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunCommand:
    text: str
    session_id: str
    request_id: str


def run_command(request: pb.RunCommandRequest) -> RunCommand:
    v = Violations()
    v.text("text", request.text, max_len=MAX_COMMAND_LINE, required=True)
    session_id = v.uuid("session_id", request.session_id, required=False)
    request_id = v.uuid("request_id", request.request_id, required=False)
    v.raise_if_any()
    return RunCommand(request.text, session_id or "", request_id or "")


@dataclass(frozen=True)
class StartChat:
    agent_id: str
    text: str
    session_id: str
    request_id: str


def start_chat(request: pb.StartChatRequest) -> StartChat:
    v = Violations()
    v.slug("agent_id", request.agent_id)
    v.text("text", request.text, max_len=MAX_MESSAGE, required=True)
    session_id = v.uuid("session_id", request.session_id, required=False)
    request_id = v.uuid("request_id", request.request_id, required=False)
    v.raise_if_any()
    return StartChat(request.agent_id, request.text, session_id or "", request_id or "")


def stream_task(request: pb.StreamTaskRequest) -> tuple[str, int]:
    v = Violations()
    checked = v.uuid("task_id", request.task_id)
    v.check(request.after_seq >= 0, "after_seq", "must not be negative")
    v.raise_if_any()
    return checked or "", request.after_seq


def submit_input(request: pb.SubmitInputRequest) -> tuple[str, str]:
    v = Violations()
    checked = v.uuid("task_id", request.task_id)
    v.text("text", request.text, max_len=MAX_MESSAGE, required=True)
    v.raise_if_any()
    return checked or "", request.text


def cancel_task(request: pb.CancelTaskRequest) -> tuple[str, str]:
    v = Violations()
    checked = v.uuid("task_id", request.task_id)
    v.text("reason", request.reason, max_len=MAX_REASON)
    v.raise_if_any()
    return checked or "", request.reason


@dataclass(frozen=True)
class Tasks:
    page_size: int
    page_token: str
    archive_filter: int
    session_id: str


def list_tasks(request: pb.ListTasksRequest) -> Tasks:
    v = Violations()
    v.check(request.page_size >= 0, "page_size", "must not be negative")
    v.text("page_token", request.page_token, max_len=MAX_PAGE_TOKEN)
    v.enum("archive_filter", request.archive_filter, runtime_pb2.ArchiveFilter.DESCRIPTOR, required=False)
    session = v.uuid("session_id", request.session_id, required=False)
    v.raise_if_any()
    return Tasks(validation.page_size(request.page_size), request.page_token, request.archive_filter, session or "")


TASK_FIELDS = ("title", "is_pinned", "is_archived")


@dataclass(frozen=True)
class TaskUpdate:
    task: task_pb2.Task
    mask: field_mask_pb2.FieldMask


def update_task(request: pb.UpdateTaskRequest) -> TaskUpdate:
    given = request.task
    v = Violations()
    task = v.uuid("task.task_id", given.task_id)
    v.text("task.title", given.title, max_len=MAX_TITLE)
    v.etag("task.etag", given.etag)
    v.raise_if_any()
    # The mask is checked against the updatable fields only (task_id names the task).
    values = task_pb2.Task(title=given.title, is_pinned=given.is_pinned, is_archived=given.is_archived, etag=given.etag)
    paths = validation.update_paths(request.update_mask, values, TASK_FIELDS)
    if "title" in paths and not given.title.strip():
        raise invalid("task.title", "is required")
    values.task_id = task or ""
    return TaskUpdate(values, field_mask_pb2.FieldMask(paths=sorted(paths)))


def download_artifact(request: pb.DownloadArtifactRequest) -> artifact_pb2.DownloadArtifactRequest:
    v = Violations()
    artifact = v.uuid("artifact_id", request.artifact_id)
    v.check(request.read_offset >= 0, "read_offset", "must not be negative")
    v.raise_if_any()
    return artifact_pb2.DownloadArtifactRequest(artifact_id=artifact or "", read_offset=request.read_offset)


ARTIFACT_FIELDS = ("display_name", "is_pinned", "is_archived")
MAX_ARTIFACT_NAME = 500


@dataclass(frozen=True)
class ArtifactUpdate:
    artifact: artifact_pb2.Artifact
    mask: field_mask_pb2.FieldMask


def update_artifact(request: pb.UpdateArtifactRequest) -> ArtifactUpdate:
    given = request.artifact
    v = Violations()
    artifact = v.uuid("artifact.artifact_id", given.artifact_id)
    v.text("artifact.display_name", given.display_name, max_len=MAX_ARTIFACT_NAME)
    v.etag("artifact.etag", given.etag)
    v.raise_if_any()
    values = artifact_pb2.Artifact(
        display_name=given.display_name, is_pinned=given.is_pinned, is_archived=given.is_archived, etag=given.etag
    )
    paths = validation.update_paths(request.update_mask, values, ARTIFACT_FIELDS)
    if "display_name" in paths and not given.display_name.strip():
        raise invalid("artifact.display_name", "is required")
    values.artifact_id = artifact or ""
    return ArtifactUpdate(values, field_mask_pb2.FieldMask(paths=sorted(paths)))


def list_sessions(request: pb.ListSessionsRequest) -> tuple[int, str]:
    v = Violations()
    v.check(request.page_size >= 0, "page_size", "must not be negative")
    v.text("page_token", request.page_token, max_len=MAX_PAGE_TOKEN)
    v.raise_if_any()
    return validation.page_size(request.page_size), request.page_token


def create_session(request: pb.CreateSessionRequest) -> tuple[str, str]:
    v = Violations()
    v.text("title", request.title, max_len=MAX_TITLE, required=True)
    request_id = v.uuid("request_id", request.request_id, required=False)
    v.raise_if_any()
    return request.title.strip(), request_id or ""


@dataclass(frozen=True)
class Artifacts:
    task_id: str
    page_size: int
    page_token: str


def list_artifacts(request: pb.ListArtifactsRequest) -> Artifacts:
    v = Violations()
    task = v.uuid("task_id", request.task_id, required=False)
    v.check(request.page_size >= 0, "page_size", "must not be negative")
    v.text("page_token", request.page_token, max_len=MAX_PAGE_TOKEN)
    v.raise_if_any()
    return Artifacts(task or "", validation.page_size(request.page_size), request.page_token)


def recent_page_size(value: int) -> int:
    return _page_size("recent_page_size", value, DEFAULT_RECENT, MAX_RECENT)


@dataclass(frozen=True)
class SidebarCursor:
    """Where a sidebar page continues: each list's service token ("" from its start, None once
    it is complete) and how many of its capped items earlier pages served."""

    tasks: str | None = ""
    pinned_tasks: int = 0
    recent_tasks: int = 0
    artifacts: str | None = ""
    pinned_artifacts: int = 0

    @property
    def done(self) -> bool:
        return self.tasks is None and self.artifacts is None


def _sidebar_pages(user_id: str, recent: int) -> Keyset[SidebarCursor]:
    def served(cursor: SidebarCursor) -> bool:
        """No page serves more of a capped list than its cap."""
        return (
            0 <= cursor.pinned_tasks <= MAX_PINNED
            and 0 <= cursor.recent_tasks <= recent
            and 0 <= cursor.pinned_artifacts <= MAX_PINNED
        )

    return Keyset(SidebarCursor, "sidebar", user_id, recent, check=served)


def sidebar(request: pb.GetSidebarRequest, user_id: str) -> tuple[int, SidebarCursor]:
    recent = recent_page_size(request.recent_page_size)
    v = Violations()
    v.text("page_token", request.page_token, max_len=MAX_PAGE_TOKEN)
    v.raise_if_any()
    return recent, _sidebar_pages(user_id, recent).after(request.page_token) or SidebarCursor()


def sidebar_token(user_id: str, recent: int, cursor: SidebarCursor) -> str:
    return "" if cursor.done else _sidebar_pages(user_id, recent).token(cursor)


@dataclass(frozen=True)
class SettingsCursor:
    """Where GetMe's settings continue: the user service's own page token."""

    token: str


def _settings_pages(user_id: str) -> Keyset[SettingsCursor]:
    return Keyset(SettingsCursor, "me.settings", user_id, check=lambda cursor: bool(cursor.token))


def me(request: pb.GetMeRequest, user_id: str) -> str:
    """The user service's settings token the request continues from ("" for the first)."""
    v = Violations()
    v.text("settings_page_token", request.settings_page_token, max_len=MAX_PAGE_TOKEN)
    v.raise_if_any()
    after = _settings_pages(user_id).after(request.settings_page_token, field="settings_page_token")
    return "" if after is None else after.token


def settings_token(user_id: str, downstream: str) -> str:
    return "" if not downstream else _settings_pages(user_id).token(SettingsCursor(downstream))


# -- agents, connections, commands ---------------------------------------------------------------


def agent_id(value: str) -> str:
    v = Violations()
    v.slug("agent_id", value)
    v.raise_if_any()
    return value


def list_agents(request: pb.ListAgentsRequest) -> tuple[int, str]:
    size = _page_size("page_size", request.page_size, validation.DEFAULT_PAGE_SIZE, validation.MAX_PAGE_SIZE)
    v = Violations()
    v.text("page_token", request.page_token, max_len=MAX_PAGE_TOKEN)
    v.raise_if_any()
    return size, request.page_token


@dataclass(frozen=True)
class Connect:
    agent_id: str
    provider: str
    display_name: str
    credentials: struct_pb2.Struct
    request_id: str


def connect(request: pb.ConnectAgentRequest) -> Connect:
    v = Violations()
    v.slug("agent_id", request.agent_id)
    v.text("provider", request.provider, max_len=MAX_PROVIDER, required=True)
    v.text("display_name", request.display_name, max_len=MAX_DISPLAY_NAME, required=True)
    v.struct("credentials", request.credentials)
    request_id = v.uuid("request_id", request.request_id, required=False)
    v.raise_if_any()
    return Connect(request.agent_id, request.provider, request.display_name, request.credentials, request_id or "")


def disconnect(request: pb.DisconnectAgentRequest) -> tuple[str, str]:
    v = Violations()
    connection_id = v.uuid("connection_id", request.connection_id)
    v.etag("etag", request.etag)
    v.raise_if_any()
    return connection_id or "", request.etag


def complete_command(request: pb.CompleteCommandRequest) -> tuple[str, int]:
    size = _page_size("page_size", request.page_size, DEFAULT_COMPLETIONS, MAX_COMPLETIONS)
    v = Violations()
    v.text("prefix", request.prefix, max_len=MAX_PREFIX)
    v.raise_if_any()
    return request.prefix, size


@dataclass(frozen=True)
class Crystallize:
    task_id: str
    name: str
    trigger: str
    description: str
    request_id: str


def crystallize(request: pb.CrystallizeSkillRequest) -> Crystallize:
    v = Violations()
    checked = v.uuid("task_id", request.task_id)
    v.text("name", request.name, max_len=MAX_SKILL_NAME, required=True)
    v.text("trigger", request.trigger, max_len=33, pattern=TRIGGER, pattern_hint=TRIGGER_HINT)
    v.text("description", request.description, max_len=MAX_DESCRIPTION)
    request_id = v.uuid("request_id", request.request_id, required=False)
    v.raise_if_any()
    return Crystallize(checked or "", request.name.strip(), request.trigger, request.description, request_id or "")


@dataclass(frozen=True)
class Search:
    query: str
    page_size: int
    page_token: str


def search_memories(request: pb.SearchMemoriesRequest) -> Search:
    v = Violations()
    v.text("query", request.query, max_len=MAX_QUERY, required=True)
    v.check(request.page_size >= 0, "page_size", "must not be negative")
    v.text("page_token", request.page_token, max_len=MAX_PAGE_TOKEN)
    v.raise_if_any()
    return Search(request.query, request.page_size, request.page_token)


def _page_size(field: str, value: int, default: int, maximum: int) -> int:
    if value < 0:
        raise invalid(field, "must not be negative")
    return validation.page_size(value, default=default, maximum=maximum)
