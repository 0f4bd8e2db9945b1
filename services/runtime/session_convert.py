"""Sessions: proto ↔ domain, and request validation (DESIGN §5)."""

from __future__ import annotations

from typing import Any

from nexus.kit import paging, validation
from nexus.kit.errors import FieldViolation, InvalidArgument
from nexus.kit.protos import timestamp
from nexus.kit.validation import Violations
from nexus.runtime.v1 import session_pb2
from services.runtime.domain.sessions import EDITABLE, MAX_TITLE_CHARS, NewSession, Session


def session_to_proto(session: Session) -> session_pb2.Session:
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


def bad_token() -> InvalidArgument:
    return InvalidArgument(
        "page_token is not valid for this request",
        reason="INVALID_PAGE_TOKEN",
        violations=[FieldViolation("page_token", "is malformed, expired, or from another request")],
    )


def uuid_cursor(cursor: list[Any], *kinds: type) -> bool:
    """A decoded keyset cursor: the given scalar kinds, then a UUID."""
    if len(cursor) != len(kinds) + 1 or not isinstance(cursor[-1], str) or not validation._UUID.match(cursor[-1]):
        return False
    for value, kind in zip(cursor, kinds, strict=False):
        if kind is int and (type(value) is not int or not 0 <= value < 2**62):
            return False
        if kind is float and (type(value) not in (int, float) or not 0 <= value <= 1):
            return False
        if kind is bool and type(value) is not bool:
            return False
    return True


def required_id(field: str, value: str) -> str:
    v = Violations()
    checked = v.uuid(field, value)
    v.raise_if_any()
    assert checked is not None
    return checked


def new_session(request: session_pb2.CreateSessionRequest, user_id: str) -> NewSession:
    v = Violations()
    request_id = v.uuid("request_id", request.request_id, required=False)
    title = v.text("session.title", request.session.title, max_len=MAX_TITLE_CHARS)
    config = v.struct("session.config", request.session.config)
    v.raise_if_any()
    return NewSession(user_id=user_id, title=title, config=config, request_id=request_id)


def owned_page(kind: str, page_size: int, page_token: str, user_id: str) -> tuple[int, list[Any] | None]:
    """The page size and keyset cursor of a list of the caller's own `kind` (sessions, schedules)."""
    limit = validation.page_size(page_size)
    cursor = paging.decode(page_token, paging.query_fingerprint(kind, user_id))
    if cursor is not None and not uuid_cursor(cursor, int):
        raise bad_token()
    return limit, cursor


def owned_next_token(kind: str, user_id: str, cursor: list[Any] | None) -> str:
    return "" if cursor is None else paging.encode(cursor, paging.query_fingerprint(kind, user_id))


def session_changes(request: session_pb2.UpdateSessionRequest) -> tuple[str, dict[str, Any], str]:
    paths = validation.update_paths(request.update_mask, request.session, EDITABLE)
    v = Violations()
    sid = v.uuid("session.session_id", request.session.session_id)
    etag = v.text("session.etag", request.session.etag, max_len=100)
    changes: dict[str, Any] = {}
    if "title" in paths:
        changes["title"] = v.text("session.title", request.session.title, max_len=MAX_TITLE_CHARS)
    if "config" in paths:
        changes["config"] = v.struct("session.config", request.session.config)
    v.raise_if_any()
    assert sid is not None
    return sid, changes, etag


def delete(request: session_pb2.DeleteSessionRequest) -> tuple[str, bool, str]:
    v = Violations()
    sid = v.uuid("session_id", request.session_id)
    etag = v.text("etag", request.etag, max_len=100)
    v.raise_if_any()
    assert sid is not None
    return sid, request.force, etag
