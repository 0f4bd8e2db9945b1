"""The pure rules: the state machine, event rules and lease rules, without a server."""

from __future__ import annotations

import itertools

import pytest

from nexus.contract import leases as lease_bounds
from nexus.kit.errors import FailedPrecondition
from services.runtime.domain import leases, states
from services.runtime.domain.events import NewEvent, event_problems
from services.runtime.domain.states import TERMINAL, TRANSITIONS, Reason, Status


def test_the_legal_transitions_are_exactly_the_designed_ones() -> None:
    Q, R, W, F, X, C = (
        Status.QUEUED,
        Status.RUNNING,
        Status.WAITING_INPUT,
        Status.FINISHED,
        Status.FAILED,
        Status.CANCELLED,
    )
    assert {
        (Q, R),
        (R, W),
        (W, Q),
        (R, Q),
        (R, F),
        (R, X),
        (Q, C),
        (R, C),
        (W, C),
    } == TRANSITIONS


@pytest.mark.parametrize(
    ("current", "reason"), list(itertools.product(list(Status), [r for r in Reason if r is not Reason.CREATED]))
)
def test_every_reason_either_moves_legally_or_is_a_failed_precondition(current: Status, reason: Reason) -> None:
    target = states.target_of(reason)
    if (current, target) in TRANSITIONS and current in _sources(reason):
        assert states.transition(current, reason) == target
    else:
        with pytest.raises(FailedPrecondition) as raised:
            states.transition(current, reason)
        assert raised.value.reason == ("TASK_ENDED" if current in TERMINAL else "ILLEGAL_TRANSITION")


def _sources(reason: Reason) -> set[Status]:
    return {s for s in Status if _legal(s, reason)}


def _legal(status: Status, reason: Reason) -> bool:
    try:
        states.transition(status, reason)
    except FailedPrecondition:
        return False
    return True


def test_terminal_states_have_no_way_out() -> None:
    for status in TERMINAL:
        assert not any(source == status for source, _ in TRANSITIONS)


def test_status_events_are_system_status_events_naming_both_states() -> None:
    event = states.status_event("running", Reason.LEASE_EXPIRED, worker="service:w1")
    assert (event.role, event.type) == ("system", "status")
    assert event.metadata == {
        "status": "queued",
        "previous_status": "running",
        "reason": "lease_expired",
        "worker": "service:w1",
    }
    assert "lease expired" in event.content_text
    assert states.ends_stream("status", {"status": "cancelled"})
    assert not states.ends_stream("status", {"status": "queued"})
    assert not states.ends_stream("message", {"status": "finished"})


def _event(role: str, type_: str, payload: dict[str, object] | None = None) -> NewEvent:
    return NewEvent(role=role, type=type_, content_text="", render_payload=payload, metadata={})  # type: ignore[arg-type]


def test_owners_append_user_events_and_workers_the_rest_and_nobody_appends_system_types() -> None:
    assert event_problems(_event("user", "message"), by_worker=False) == []
    assert event_problems(_event("assistant", "tool_use"), by_worker=True) == []
    assert [f for f, _ in event_problems(_event("assistant", "message"), by_worker=False)] == ["role"]
    assert [f for f, _ in event_problems(_event("user", "message"), by_worker=True)] == ["role"]
    assert [f for f, _ in event_problems(_event("system", "status"), by_worker=True)] == ["type"]
    assert [f for f, _ in event_problems(_event("assistant", "plan"), by_worker=True)] == ["type"]


def test_a_render_event_names_its_target_zone_and_component() -> None:
    ok = _event("assistant", "nexus_render", {"target_zone": "canvas", "component": "mobile_previewer"})
    assert event_problems(ok, by_worker=True) == []
    missing = _event("assistant", "nexus_render", {"target_zone": "canvas"})
    assert [f for f, _ in event_problems(missing, by_worker=True)] == ["render_payload"]
    assert len(event_problems(_event("assistant", "nexus_render"), by_worker=True)) == 2


def test_only_the_live_holder_of_the_named_lease_holds_it() -> None:
    state = leases.LeaseState("running", "L1", "service:w1", live=True)
    assert leases.holds(state, "L1", "service:w1")
    assert not leases.holds(state, "L2", "service:w1")
    assert not leases.holds(state, "L1", "service:w2")
    assert not leases.holds(leases.LeaseState("running", "L1", "service:w1", live=False), "L1", "service:w1")
    assert not leases.holds(leases.LeaseState("queued", None, None, live=False), "L1", "service:w1")
    with pytest.raises(FailedPrecondition):
        leases.require_holder(state, "L2", "service:w1")
    assert lease_bounds.lease_seconds(0) == lease_bounds.DEFAULT_LEASE_S
    assert lease_bounds.lease_seconds(0.05) is None and lease_bounds.lease_seconds(7200) is None


def test_a_notification_names_tasks_and_tails_or_asks_for_a_full_reread() -> None:
    from services.runtime.store.writer import NOTIFY_EVERYTHING, parse_hints

    first, second = "00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000002"
    assert parse_hints(f"{first}:7,{second}:12") == [(first, 7), (second, 12)]
    assert parse_hints(NOTIFY_EVERYTHING) is None
    assert parse_hints(f"{first}:x,:3,{second}:4") == [(second, 4)]
