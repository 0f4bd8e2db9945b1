"""Conversions every servicer needs: timestamps and etags."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import overload

from google.protobuf import timestamp_pb2

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


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
