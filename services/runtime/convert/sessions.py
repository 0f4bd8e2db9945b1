"""Sessions: proto ↔ domain, and request validation (DESIGN §5)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nexus.kit import idempotency, validation
from nexus.kit.idempotency import RequestKey
from nexus.kit.paging import Keyset
from nexus.kit.protos import timestamp
from nexus.kit.validation import Violations
from nexus.runtime.v1 import session_pb2
from services.runtime.convert.shared import Edit
from services.runtime.domain.sessions import EDITABLE, MAX_TITLE_CHARS, NewSession, Session
from services.runtime.store.sessions import SessionCursor


@dataclass(frozen=True, slots=True)
class Creation:
    """A CreateSession request: the session, and the key of its request_id (None without one)."""

    session: NewSession
    key: RequestKey | None


@dataclass(frozen=True, slots=True)
class Deletion:
    """A DeleteSession request: the session, whether its tasks go with it, the etag it was read at."""

    session_id: str
    force: bool
    etag: str


def to_proto(session: Session) -> session_pb2.Session:
    message = session_pb2.Session(
        session_id=session.id,
        user_id=session.user_id,
        title=session.title,
        create_time=timestamp(session.created_at),
        update_time=timestamp(session.updated_at),
        etag=session.etag,
    )
    message.config.update(session.config)
    return message


def creation(request: session_pb2.CreateSessionRequest, user_id: str) -> Creation:
    v = Violations()
    key = idempotency.key(v, request, request.request_id, principal=user_id, method="CreateSession")
    title = v.text("session.title", request.session.title, max_len=MAX_TITLE_CHARS)
    config = v.struct("session.config", request.session.config)
    v.raise_if_any()
    return Creation(NewSession(user_id=user_id, title=title, config=config), key)


def listing(user_id: str) -> Keyset[SessionCursor]:
    """The page tokens of the caller's sessions."""
    return Keyset(SessionCursor, "sessions", user_id)


def edit(request: session_pb2.UpdateSessionRequest) -> Edit:
    paths = validation.update_paths(request.update_mask, request.session, EDITABLE)
    v = Violations()
    sid = v.uuid("session.session_id", request.session.session_id)
    etag = v.etag("session.etag", request.session.etag)
    changes: dict[str, Any] = {}
    if "title" in paths:
        changes["title"] = v.text("session.title", request.session.title, max_len=MAX_TITLE_CHARS)
    if "config" in paths:
        changes["config"] = v.struct("session.config", request.session.config)
    v.raise_if_any()
    assert sid is not None
    return Edit(sid, changes, etag)


def deletion(request: session_pb2.DeleteSessionRequest) -> Deletion:
    v = Violations()
    sid = v.uuid("session_id", request.session_id)
    etag = v.etag("etag", request.etag)
    v.raise_if_any()
    assert sid is not None
    return Deletion(sid, request.force, etag)
