"""Pure workspace rules, without a server: cron, the plan graph, merge patches, search text."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from nexus.contract.steps import PlanStep, StepStatus
from nexus.kit.validation import JSON
from services.runtime.domain import context, cron, memory, plan, schedules

# -- cron ---------------------------------------------------------------------------------------


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_cron_fields_accept_values_ranges_steps_lists_and_names() -> None:
    parsed = cron.parse("*/15 9-17/4 1,15 jan-mar,DEC Mon-Fri")
    assert parsed.minutes == (0, 15, 30, 45)
    assert parsed.hours == (9, 13, 17)
    assert parsed.days == {1, 15}
    assert parsed.months == {1, 2, 3, 12}
    assert parsed.weekdays == {1, 2, 3, 4, 5}
    assert cron.parse("0 0 * * 7").weekdays == {0}  # 7 is Sunday too
    assert cron.parse("5/20 * * * *").minutes == (5, 25, 45)
    assert cron.parse("@daily") == cron.parse("0 0 * * *")


@pytest.mark.parametrize(
    ("expression", "names"),
    [
        ("", "is required"),
        ("* * * *", "must have 5 fields"),
        ("60 * * * *", "minute (field 1)"),
        ("* 24 * * *", "hour (field 2)"),
        ("* * 0 * *", "day of month (field 3)"),
        ("* * * 13 *", "month (field 4)"),
        ("* * * * 8", "day of week (field 5)"),
        ("5-1 * * * *", "from low to high"),
        ("*/0 * * * *", "at least 1"),
        ("1,,2 * * * *", "empty list item"),
        ("* * * foo *", "month (field 4)"),
        ("@reboot", "unknown macro"),
        ("* * * * * *", "got 6"),
    ],
)
def test_bad_cron_expressions_say_which_field_is_wrong(expression: str, names: str) -> None:
    with pytest.raises(cron.CronError, match=names.replace("(", r"\(").replace(")", r"\)")):
        cron.parse(expression)


def test_next_time_in_a_time_zone() -> None:
    weekdays = cron.parse("0 9 * * mon-fri")
    shanghai = cron.zone("Asia/Shanghai")
    # Saturday 11:00 in Shanghai → Monday 09:00 local = 01:00 UTC.
    assert cron.next_after(weekdays, shanghai, at("2025-01-04T03:00:00")) == at("2025-01-06T01:00:00")
    # Strictly after: a time exactly on the schedule moves to the next one.
    assert cron.next_after(cron.parse("*/5 * * * *"), cron.zone(""), at("2025-01-01T10:05:00")) == at(
        "2025-01-01T10:10:00"
    )


def test_day_fields_either_match_when_both_are_restricted_else_both() -> None:
    either = cron.parse("0 0 13 * fri")  # the 13th, and every Friday
    both = cron.parse("0 0 */1 * fri")  # `*`-led day field: every Friday only
    utc = cron.zone("UTC")
    assert cron.next_after(either, utc, at("2025-06-01T00:00:00")) == at("2025-06-06T00:00:00")  # a Friday
    assert cron.next_after(either, utc, at("2025-06-10T00:00:00")) == at("2025-06-13T00:00:00")  # the 13th
    assert cron.next_after(both, utc, at("2025-06-10T00:00:00")) == at("2025-06-13T00:00:00")
    assert cron.next_after(both, utc, at("2025-06-13T00:00:00")) == at("2025-06-20T00:00:00")


def test_daylight_saving_gaps_do_not_fire_and_repeated_hours_fire_once() -> None:
    new_york = cron.zone("America/New_York")
    # 2025-03-09 02:30 does not exist in New York: the next 02:30 is the day after.
    assert cron.next_after(cron.parse("30 2 * * *"), new_york, at("2025-03-08T12:00:00")) == at("2025-03-10T06:30:00")
    # 2025-11-02 01:30 happens twice: it fires at the first (EDT, 05:30 UTC) only.
    daily = cron.parse("30 1 * * *")
    first = cron.next_after(daily, new_york, at("2025-11-02T04:00:00"))
    assert first == at("2025-11-02T05:30:00")
    assert cron.next_after(daily, new_york, first) == at("2025-11-03T06:30:00")


def test_a_date_that_never_comes_has_no_next_time_and_zones_must_exist() -> None:
    assert cron.next_after(cron.parse("0 0 30 2 *"), cron.zone("UTC"), at("2025-01-01T00:00:00")) is None
    assert cron.next_after(cron.parse("0 0 29 2 *"), cron.zone("UTC"), at("2025-01-01T00:00:00")) == at(
        "2028-02-29T00:00:00"
    )
    for bad in ("Mars/Olympus", "../etc/passwd", "/etc/localtime"):
        with pytest.raises(cron.CronError):
            cron.zone(bad)


def test_a_schedule_fires_once_after_downtime_and_its_task_names_the_schedule_and_due_time() -> None:
    due = at("2025-01-01T10:00:00")
    now = at("2025-01-01T13:37:10")  # three and a half hours of missed hourly times
    assert schedules.next_fire("0 * * * *", "UTC", now) == at("2025-01-01T14:00:00")
    command = schedules.Command(agent_id="scanner", skill_id=None, team_id=None, inputs={}, title="nightly")
    schedule = schedules.Schedule("s1", "u1", "0 * * * *", "UTC", command, "active", now, None, None, 1, due, due)
    fired = schedules.fired_task(schedule, due)
    assert (fired.schedule_id, fired.scheduled_at, fired.user_id) == ("s1", due, "u1")


# -- plan ---------------------------------------------------------------------------------------


def step(step_id: str, *deps: str, status: str = StepStatus.PENDING) -> PlanStep:
    return PlanStep(id=step_id, title=step_id, action="noop", depends_on=deps, status=status)


def test_plan_validation_finds_duplicates_missing_dependencies_and_names_cycles() -> None:
    problems = plan.validate([step("a"), step("a"), step("b", "zz")])
    assert {(p.field, p.description.split(" ")[0]) for p in problems} == {
        ("steps[1].step_id", "duplicates"),
        ("steps[2].depends_on[0]", "names"),
    }
    cycle = plan.validate([step("a", "c"), step("b", "a"), step("c", "b"), step("d")])
    assert [(p.field, p.description) for p in cycle] == [("steps[0].depends_on", "forms a cycle: a → c → b → a")]
    assert plan.validate([step("a", "a")])[0].description == "forms a cycle: a → a"


def test_a_step_runs_only_after_its_dependencies_are_settled() -> None:
    problems = plan.validate([step("a"), step("b", "a", status=StepStatus.RUNNING)])
    assert [p.field for p in problems] == ["steps[1].status"]
    assert plan.validate([step("a", status=StepStatus.SKIPPED), step("b", "a", status=StepStatus.DONE)]) == []


def test_current_step_index_is_derived_from_the_statuses() -> None:
    assert plan.current_step_index([]) == 0
    steps = [step("a"), step("b", "a"), step("c")]
    assert plan.current_step_index(steps) == 0
    steps[0] = step("a", status=StepStatus.DONE)
    assert plan.current_step_index(steps) == 1
    steps[2] = step("c", status=StepStatus.RUNNING)
    assert plan.current_step_index(steps) == 2  # a running step wins
    blocked = [step("a", status=StepStatus.FAILED), step("b", "a")]
    assert plan.current_step_index(blocked) == 0  # nothing can run: the failure blocks
    settled = [step("a", status=StepStatus.DONE), step("b", status=StepStatus.SKIPPED)]
    assert plan.current_step_index(settled) == 2


# -- context and memory -------------------------------------------------------------------------


def test_merge_patch_follows_rfc_7386() -> None:
    # Examples from RFC 7386, appendix A.
    cases = [
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
        ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
        ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ]
    for target, patch, result in cases:
        assert context.merge_patch(target, patch) == result  # type: ignore[arg-type]
    original: dict[str, JSON] = {"a": {"b": 1}}
    context.merge_patch(original, {"a": {"b": 2}})
    assert original == {"a": {"b": 1}}  # the target is not modified in place


def test_search_text_writes_cjk_runs_as_bigrams() -> None:
    assert memory.search_text("我们使用向量数据库") == "我们 们使 使用 用向 向量 量数 数据 据库"
    assert memory.search_text("\uff34\uff45\uff53\uff4c\uff41 财报, Q3") == "tesla 财报 , q3"  # full-width Latin
    assert memory.search_text("库") == "库"
    assert memory.document("Summary", ("one", "二三")) == "summary one 二三"


def test_scheduled_inputs_are_checked_against_the_skills_declared_types() -> None:
    specs = [
        schedules.InputSpec("url", "url", required=True),
        schedules.InputSpec("depth", "integer", has_default=True),
        schedules.InputSpec("mode", "enum", allowed_values=("fast", "full")),
        schedules.InputSpec("ratio", "number"),
        schedules.InputSpec("dry", "boolean"),
        schedules.InputSpec("extra", "json"),
    ]
    good = {"url": "https://acme.com", "depth": 3, "mode": "fast", "ratio": 0.5, "dry": False, "extra": [1, {"a": 2}]}
    assert schedules.input_problems(specs, good) == []
    bad = {"url": "ftp://acme.com", "depth": True, "mode": "slow", "ratio": "1", "dry": 1, "unknown": 1}
    assert {name for name, _ in schedules.input_problems(specs, bad)} == {
        "url",
        "depth",
        "mode",
        "ratio",
        "dry",
        "unknown",
    }
    assert schedules.input_problems(specs, {}) == [("url", "is required by the skill")]
