"""The wire forms every service shares: timestamps, and etags (their format, their length limit
and the one answer to a stale one)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import overload

from google.protobuf import timestamp_pb2

from nexus.kit.errors import Aborted

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

# Longer than any etag a service issues (`W/"` + a 64-bit counter + `"` is 23 characters), so a
# longer one is malformed input rather than a stale etag.
MAX_ETAG_CHARS = 64


@overload
def timestamp(moment: datetime) -> timestamp_pb2.Timestamp: ...
@overload
def timestamp(moment: None) -> None: ...
@overload
def timestamp(moment: datetime | None) -> timestamp_pb2.Timestamp | None: ...


def timestamp(moment: datetime | None) -> timestamp_pb2.Timestamp | None:
    """A Timestamp from an aware datetime (what timestamptz columns return). Integer arithmetic
    instead of Timestamp.FromDatetime: it sits on the runtime's hot path."""
    if moment is None:
        return None
    micros = (moment - _EPOCH) // _MICROSECOND
    return timestamp_pb2.Timestamp(seconds=micros // 1_000_000, nanos=micros % 1_000_000 * 1000)


def etag(version: int) -> str:
    """AIP-154 etag of a row's version counter: opaque to clients, new after every write."""
    return f'W/"{version}"'


def etag_mismatch(kind: str) -> Aborted:
    """The one answer to a write whose etag is stale: ABORTED, reason ETAG_MISMATCH."""
    return Aborted(f"the {kind} changed since it was read; read it again and retry", reason="ETAG_MISMATCH")


def check_etag(given: str, version: int | None, kind: str) -> None:
    """A write's precondition (AIP-154): an empty etag asks for none; any other must be the etag
    of `version`, the row's current version (None: the row is gone, so no etag matches)."""
    if given and (version is None or given != etag(version)):
        raise etag_mismatch(kind)
