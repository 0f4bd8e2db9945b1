"""The status a domain error becomes: bounded so that it always reaches the client."""

from __future__ import annotations

from google.rpc import error_details_pb2, status_pb2

from nexus.kit import errors
from nexus.kit.errors import FieldViolation, InvalidArgument


def _violations_sent(err: errors.NexusError) -> list[FieldViolation]:
    status = errors.to_status(err, "nexus.testing.v1")
    trailer = dict(status.trailing_metadata)[errors.STATUS_DETAILS_KEY]
    assert len(trailer) < 16 * 1024, "gRPC clients drop trailers above 16 KiB"
    decoded = status_pb2.Status.FromString(trailer)
    bad = error_details_pb2.BadRequest()
    for detail in decoded.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            detail.Unpack(bad)
    return [FieldViolation(v.field, v.description) for v in bad.field_violations]


def test_a_few_violations_are_sent_unchanged() -> None:
    sent = [FieldViolation(f"items[{i}]", "is bad") for i in range(3)]
    assert _violations_sent(InvalidArgument("bad", violations=sent)) == sent


def test_hundreds_of_violations_are_cut_to_a_prefix_and_a_count() -> None:
    many = [FieldViolation(f"steps[{i}].depends_on[0]", "names no step of this skill " * 3) for i in range(1000)]
    sent = _violations_sent(InvalidArgument("bad", violations=many))
    assert sent[:-1] == many[: len(sent) - 1]
    assert len(sent) - 1 <= errors.MAX_VIOLATIONS
    assert sent[-1] == FieldViolation("", f"and {1000 - (len(sent) - 1)} more violations not listed")


def test_a_single_huge_violation_is_summarised() -> None:
    sent = _violations_sent(InvalidArgument("bad", violations=[FieldViolation("x", "y" * 20_000)]))
    assert sent == [FieldViolation("", "and 1 more violations not listed")]


def test_an_error_that_says_how_long_to_wait_carries_retry_info() -> None:
    status = errors.to_status(
        errors.ResourceExhausted("slow down", reason="RATE_LIMITED", retry_after_s=1.2345), "nexus.testing.v1"
    )
    decoded = status_pb2.Status.FromString(dict(status.trailing_metadata)[errors.STATUS_DETAILS_KEY])
    retry = error_details_pb2.RetryInfo()
    assert [d.Unpack(retry) for d in decoded.details if d.Is(error_details_pb2.RetryInfo.DESCRIPTOR)] == [True]
    # Rounded up to whole milliseconds: a client that waits the delay is never early.
    assert retry.retry_delay.ToMilliseconds() == 1235


def test_an_error_without_a_wait_has_no_retry_info() -> None:
    status = errors.to_status(errors.ResourceExhausted("full", reason="FULL"), "nexus.testing.v1")
    decoded = status_pb2.Status.FromString(dict(status.trailing_metadata)[errors.STATUS_DETAILS_KEY])
    assert not any(d.Is(error_details_pb2.RetryInfo.DESCRIPTOR) for d in decoded.details)
