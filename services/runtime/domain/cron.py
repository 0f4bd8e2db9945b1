"""Cron expressions: the classic five fields, read in an IANA time zone. Pure; no I/O.

`parse` turns an expression into sets of allowed values and says exactly which field is wrong;
`next_after` finds the first local wall-clock time after a moment that the expression names.

Daylight-saving rules (documented on the proto): a local time that does not exist (skipped by a
spring-forward change) does not fire; a local time that exists twice (fall back) fires once, at
its first occurrence.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MAX_EXPRESSION_CHARS = 200
# An expression that names no time within this many years never fires (e.g. `0 0 30 2 *`).
SEARCH_YEARS = 8

MONTHS = {
    name: i
    for i, name in enumerate(["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], 1)
}
WEEKDAYS = {name: i for i, name in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"])}
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# (name, lowest, highest, names)
_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, MONTHS),
    ("day of week", 0, 7, WEEKDAYS),
)


class CronError(ValueError):
    """Why an expression or time zone is not valid; the message names the field, not the value."""


@dataclass(frozen=True, slots=True)
class Cron:
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    # As in Vixie cron: a day field written starting with `*` is unrestricted, and then both day
    # fields must match; when both are restricted, either one matching is enough.
    days_star: bool
    weekdays_star: bool

    def matches_day(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        by_month_day = day.day in self.days
        by_weekday = day.isoweekday() % 7 in self.weekdays
        if self.days_star or self.weekdays_star:
            return by_month_day and by_weekday
        return by_month_day or by_weekday


def parse(expression: str) -> Cron:
    text = expression.strip()
    if not text:
        raise CronError("is required")
    if len(text) > MAX_EXPRESSION_CHARS:
        raise CronError(f"must be at most {MAX_EXPRESSION_CHARS} characters")
    if text.startswith("@"):
        macro = MACROS.get(text.lower())
        if macro is None:
            raise CronError(f"unknown macro; use one of {', '.join(MACROS)}")
        text = macro
    parts = text.split()
    if len(parts) != len(_FIELDS):
        raise CronError(f"must have 5 fields (minute hour day-of-month month day-of-week), got {len(parts)}")
    values = [
        _field(part, position, *spec) for position, (part, spec) in enumerate(zip(parts, _FIELDS, strict=True), 1)
    ]
    minutes, hours, days, months, weekdays = values
    return Cron(
        minutes=tuple(sorted(minutes)),
        hours=tuple(sorted(hours)),
        days=frozenset(days),
        months=frozenset(months),
        weekdays=frozenset(d % 7 for d in weekdays),  # 7 is Sunday too
        days_star=parts[2].startswith("*"),
        weekdays_star=parts[4].startswith("*"),
    )


def _field(text: str, position: int, name: str, low: int, high: int, names: dict[str, int]) -> set[int]:
    where = f"{name} (field {position})"
    values: set[int] = set()
    for item in text.split(","):
        if not item:
            raise CronError(f"{where} has an empty list item")
        span, slash, step_text = item.partition("/")
        step = 1
        if slash:
            step = _number(step_text, where, "step")
            if step < 1:
                raise CronError(f"{where}: a step must be at least 1")
        if span == "*":
            first, last = low, high
        elif "-" in span:
            start_text, _, end_text = span.partition("-")
            first, last = _value(start_text, where, names), _value(end_text, where, names)
            if first > last:
                raise CronError(f"{where}: a range must go from low to high")
        else:
            first = _value(span, where, names)
            last = high if slash else first
        for value in (first, last):
            if not low <= value <= high:
                raise CronError(f"{where}: values must be within {low}-{high}")
        values.update(range(first, last + 1, step))
    return values


def _number(text: str, where: str, what: str) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 4:
        raise CronError(f"{where}: a {what} must be a whole number")
    return int(text)


def _value(text: str, where: str, names: dict[str, int]) -> int:
    if names and text.upper() in names:
        return names[text.upper()]
    if not text.isascii() or not text.isdigit() or len(text) > 4:
        hint = f" or a name ({', '.join(list(names)[:3])}, …)" if names else ""
        raise CronError(f"{where}: expected a number{hint}, `*`, a range a-b or a step /n")
    return int(text)


def zone(name: str) -> ZoneInfo:
    """The IANA zone `name` (empty: UTC); CronError when there is no such zone."""
    key = name or "UTC"
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise CronError("names no IANA time zone (such as Europe/Berlin or Asia/Shanghai)") from None


def next_after(cron: Cron, tz: ZoneInfo, after: datetime) -> datetime | None:
    """The first moment (UTC) strictly after `after` whose local wall-clock time in `tz` the
    expression names, or None when there is none within SEARCH_YEARS."""
    start = (after.astimezone(tz).replace(tzinfo=None, second=0, microsecond=0)) + timedelta(minutes=1)
    day = start.date()
    last_day = day + timedelta(days=366 * SEARCH_YEARS)
    while day <= last_day:
        if day.month not in cron.months:
            day = date(day.year + day.month // 12, day.month % 12 + 1, 1)
            continue
        if cron.matches_day(day):
            earliest = start.time() if day == start.date() else time(0, 0)
            for hour in cron.hours:
                if hour < earliest.hour:
                    continue
                for minute in cron.minutes:
                    if hour == earliest.hour and minute < earliest.minute:
                        continue
                    wall = datetime.combine(day, time(hour, minute))
                    moment = wall.replace(tzinfo=tz).astimezone(UTC)
                    if moment.astimezone(tz).replace(tzinfo=None) != wall:
                        continue  # skipped by a daylight-saving change
                    if moment <= after:
                        continue  # the first occurrence of a repeated hour, already past
                    return moment
        day += timedelta(days=1)
    return None
