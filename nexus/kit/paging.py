"""Pages (AIP-158): keyset cursors in opaque page tokens, and pages that fit in one message.

A list's order is a keyset: the columns of its ORDER BY, ending with a unique one. Its cursor is a
small frozen dataclass of those columns (`SettingCursor(key: str)`), and `Keyset(SettingCursor,
*query)` turns cursors into page tokens and back. A token carries the cursor of the last item
served plus a fingerprint of the query it belongs to, so a token replayed against different
filters (or by another caller) is refused instead of silently paging through the wrong list.
Every bad token is the one INVALID_ARGUMENT of `invalid_token`, reason INVALID_PAGE_TOKEN.

A page ends before the message limit, however large its items (DESIGN §5). A `Page` is filled
row by row as the store reads them: it keeps at most `size` items whose messages fit a `Budget`,
asks the database for `size + 1` rows (the extra one says that more follow), and tells the store
to stop reading as soon as it is complete. A page always holds at least one item, so a list always
progresses; an item that alone exceeds the limit is answered with RESOURCE_EXHAUSTED
(RESPONSE_TOO_LARGE) by the error interceptor, never sent to fail in transit.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import json
import math
import types
import typing
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, NewType, Protocol, TypeVar

from google.protobuf.message import Message

from nexus.kit.errors import FieldViolation, InvalidArgument
from nexus.kit.validation import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, is_uuid, page_size, text_problem

Cursor = list[str | int | float | bool | None]
T = TypeVar("T")
M = TypeVar("M", bound=Message)
C = TypeVar("C")
T_contra = TypeVar("T_contra", contravariant=True)
C_co = TypeVar("C_co", covariant=True)

# A cursor field that holds a UUID (a row id): checked and made canonical when a token is read.
UUID = NewType("UUID", str)

_MAX_TOKEN_LEN = 2048
# Kept free of items in every response: a next_page_token (at most _MAX_TOKEN_LEN) and the few
# small fields a list response has beside its items.
RESERVED_BYTES = 16 * 1024
# Rows a store's page read fetches from the database at a time (a page of size + 1 rows is read
# in one fetch up to this): it stops fetching once the page is complete.
FETCH_ROWS = 100

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_MAX_INT = 2**63


def invalid_token(field: str = "page_token") -> InvalidArgument:
    """The one answer to a page token that is malformed, forged, or from another query."""
    return InvalidArgument(
        f"{field} is not valid for this request",
        reason="INVALID_PAGE_TOKEN",
        violations=[FieldViolation(field, "is malformed, expired, or from a request with other filters")],
    )


def query_fingerprint(*parts: object) -> str:
    """A short stable digest of everything that defines the list (caller, filters, order)."""
    raw = json.dumps([str(p) for p in parts], separators=(",", ":"))
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def encode(cursor: Sequence[str | int | float | bool | None], fingerprint: str) -> str:
    raw = json.dumps([fingerprint, list(cursor)], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode(token: str, fingerprint: str, *, field: str = "page_token") -> Cursor | None:
    """The cursor in `token`, or None for an empty token (the first page)."""
    if not token:
        return None
    bad = invalid_token(field)
    if len(token) > _MAX_TOKEN_LEN:
        raise bad
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        fp, cursor = json.loads(raw)
    except (binascii.Error, ValueError, TypeError):
        raise bad from None
    if fp != fingerprint or not isinstance(cursor, list):
        raise bad
    return cursor


# -- typed cursors --------------------------------------------------------------------------------


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and text_problem(value) is None else None


def _uuid(value: object) -> str | None:
    return value.lower() if isinstance(value, str) and is_uuid(value) else None


def _int(value: object) -> int | None:
    return value if type(value) is int and -_MAX_INT <= value < _MAX_INT else None


def _float(value: object) -> float | None:
    return float(value) if type(value) in (int, float) and math.isfinite(value) else None  # type: ignore[arg-type]


def _bool(value: object) -> bool | None:
    return value if type(value) is bool else None


def _datetime(value: object) -> datetime | None:
    """Timestamps travel as whole microseconds since the epoch: exact, and compared in SQL as given."""
    if type(value) is not int:
        return None
    try:
        return _EPOCH + value * _MICROSECOND
    except OverflowError:
        return None


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // _MICROSECOND


# What each kind of cursor field reads from a token (None: not of that kind) and writes into one.
_READ: dict[object, Callable[[object], object]] = {
    str: _str,
    UUID: _uuid,
    int: _int,
    float: _float,
    bool: _bool,
    datetime: _datetime,
}


@dataclasses.dataclass(frozen=True)
class _Field:
    name: str
    read: Callable[[object], object]
    optional: bool
    is_time: bool


_FIELDS: dict[object, tuple[_Field, ...]] = {}


def _fields(cursor: type[Any]) -> tuple[_Field, ...]:
    """The fields of a cursor dataclass, in order, with how each is read; a field of another type
    is a programming error, found the first time the cursor is used."""
    known = _FIELDS.get(cursor)
    if known is not None:
        return known
    hints = typing.get_type_hints(cursor)
    out = []
    for f in dataclasses.fields(cursor):
        hint = hints[f.name]
        args = typing.get_args(hint)
        optional = isinstance(hint, types.UnionType) and len(args) == 2 and type(None) in args
        kind = next(a for a in args if a is not type(None)) if optional else hint
        if kind not in _READ:
            raise TypeError(f"cursor field {cursor.__name__}.{f.name} has unsupported type {hint!r}")
        out.append(_Field(f.name, _READ[kind], optional, kind is datetime))
    _FIELDS[cursor] = tuple(out)
    return _FIELDS[cursor]


class Keyset(Generic[C]):
    """The page tokens of one list query: cursors of type `cursor` (a frozen dataclass of the
    order's columns) bound to the fingerprint of `query` (everything that defines the list).
    `check` refuses cursors that decode but cannot come from this list (a seq before the range)."""

    def __init__(self, cursor: type[C], *query: object, check: Callable[[C], bool] | None = None) -> None:
        self._type = cursor
        self._fields = _fields(cursor)
        self._check = check
        self.fingerprint = query_fingerprint(*query)

    def after(self, token: str, *, field: str = "page_token") -> C | None:
        """The cursor a page token continues after; None for an empty token (the first page)."""
        values = decode(token, self.fingerprint, field=field)
        if values is None:
            return None
        if len(values) != len(self._fields):
            raise invalid_token(field)
        parsed: dict[str, object] = {}
        for spec, value in zip(self._fields, values, strict=True):
            read = None if value is None and spec.optional else spec.read(value)
            if read is None and not (value is None and spec.optional):
                raise invalid_token(field)
            parsed[spec.name] = read
        cursor = self._type(**parsed)
        if self._check is not None and not self._check(cursor):
            raise invalid_token(field)
        return cursor

    def token(self, cursor: C | None) -> str:
        """The page token after `cursor`; "" (the list ends) for None."""
        if cursor is None:
            return ""
        values: list[str | int | float | bool | None] = []
        for spec in self._fields:
            value = getattr(cursor, spec.name)
            values.append(_micros(value) if spec.is_time and value is not None else value)
        return encode(values, self.fingerprint)

    def cursor_of(self, item: object) -> C:
        """The cursor after `item`: its attributes of the cursor's field names."""
        return self._type(**{spec.name: getattr(item, spec.name) for spec in self._fields})

    def page(
        self,
        request: PageRequest,
        budget: Budget,
        to_proto: Callable[[T], M],
        *,
        cursor_of: Callable[[T], C] | None = None,
        default: int = DEFAULT_PAGE_SIZE,
        maximum: int = MAX_PAGE_SIZE,
    ) -> Page[T, M, C]:
        """The page a List request asks for: its size (AIP-158: 0 is the default, past the maximum
        is the maximum, negative is INVALID_ARGUMENT; a list with bounds of its own names them)
        after the cursor in its token."""
        size = page_size(request.page_size, default=default, maximum=maximum)
        return Page(self, self.after(request.page_token), size, budget, to_proto, cursor_of or self.cursor_of)


class PageRequest(Protocol):
    """What every List request has (AIP-158)."""

    @property
    def page_size(self) -> int: ...
    @property
    def page_token(self) -> str: ...


class Rows(Protocol[T_contra, C_co]):
    """What a store sees of a page: where to start, how many rows to ask for, and where to put
    each row it reads, in order, until `add` says the page is complete."""

    @property
    def after(self) -> C_co | None: ...
    @property
    def limit(self) -> int: ...
    def add(self, item: T_contra) -> bool: ...


class Page(Generic[T, M, C]):
    """One page of a list, filled as the store reads rows: at most `size` items that fit `budget`,
    their messages, and the token of the next page."""

    def __init__(
        self,
        keyset: Keyset[C],
        after: C | None,
        size: int,
        budget: Budget,
        to_proto: Callable[[T], M],
        cursor_of: Callable[[T], C],
    ) -> None:
        self._keyset = keyset
        self.after = after
        self.size = size
        self._budget = budget
        self._to_proto = to_proto
        self._cursor_of = cursor_of
        self._last: T | None = None
        self.messages: list[M] = []
        self.more = False

    @property
    def limit(self) -> int:
        """Rows to ask the database for: one past the page says that more follow."""
        return self.size + 1

    def add(self, item: T) -> bool:
        """Takes the next item in list order; False once the page is complete (stop reading): it
        is full, or the item would not fit, and then it starts the next page."""
        if self.more:
            return False
        if len(self.messages) < self.size:
            message = self._to_proto(item)
            if self._budget.take(message.ByteSize()):
                self.messages.append(message)
                self._last = item
                return True
        self.more = True
        return False

    def extend(self, items: Iterable[T]) -> None:
        """Takes items already read, in list order, until the page is complete: for a read that
        is not a SQLAlchemy query (`kit.db.read_page`), such as the runtime's event log."""
        for item in items:
            if not self.add(item):
                return

    @property
    def next_page_token(self) -> str:
        """The token after the last item kept, when more follow; "" ends the list."""
        if not self.more or self._last is None:
            return ""
        return self._keyset.token(self._cursor_of(self._last))


def _varint_len(value: int) -> int:
    return max(1, (value.bit_length() + 6) // 7)


def field_bytes(size: int) -> int:
    """What a message of `size` bytes adds to its parent as one (repeated) message field: its
    bytes, their length prefix and a field tag (two bytes cover field numbers up to 2047)."""
    return size + _varint_len(size) + 2


class Budget:
    """The bytes one response may still grow by before it reaches the message limit."""

    def __init__(self, max_message_bytes: int, *, reserved: int = RESERVED_BYTES) -> None:
        self.left = max_message_bytes - reserved
        self.items = 0

    def spend(self, message: Message) -> None:
        """Counts a part every response holds, such as GetMe's profile beside its settings."""
        self.left -= field_bytes(message.ByteSize())

    def take(self, size: int) -> bool:
        """Whether an item of `size` encoded bytes fits; if it does, it is counted. The first
        item of a response always does: a list must progress even past a huge item."""
        cost = field_bytes(size)
        if self.items and cost > self.left:
            return False
        self.left -= cost
        self.items += 1
        return True

    def fill(self, items: Iterable[T], to_proto: Callable[[T], M]) -> list[M]:
        """The messages of `items`, from the first, for as long as they fit."""
        out: list[M] = []
        for item in items:
            message = to_proto(item)
            if not self.take(message.ByteSize()):
                break
            out.append(message)
        return out
