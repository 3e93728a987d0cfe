"""Cron schedules: parsing with croniter, the next run time, and the bounded history of runs.

Shared by the operator (it refuses an expression croniter cannot read, with a condition and a
Warning) and the agent (it runs the schedule). Everything here is pure: times in, times out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Literal, Protocol, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter

CRON_MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
CRON_PATTERN = (
    r"^\s*(@(yearly|annually|monthly|weekly|daily|midnight|hourly)"
    r"|[0-9A-Za-z*?/,#-]+(\s+[0-9A-Za-z*?/,#-]+){4,5})\s*$"
)
"""The shape the apiserver checks: a macro, or 5 or 6 fields of cron characters. Field ranges and
names are croniter's to judge (the operator reports what it refuses)."""
TIME_ZONE_PATTERN = r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$"
ConcurrencyPolicy = Literal["Allow", "Forbid"]
"""As a CronJob's concurrencyPolicy, without Replace (a running guest stops only at its timeout)."""
SECONDS_FIELDS = 6
"""A sixth field comes first and gives the seconds, as Quartz and Spring read it."""


class ScheduleError(ValueError):
    """An expression or time zone croniter or the zone database cannot use."""


@dataclass(frozen=True)
class CronSchedule:
    """A parsed cron expression in a time zone (UTC unless named)."""

    expression: str
    zone: tzinfo
    zone_name: str

    @property
    def with_seconds(self) -> bool:
        return len(self.expression.split()) == SECONDS_FIELDS

    def next_after(self, moment: datetime) -> datetime:
        """The first run time strictly after `moment` (aware), in UTC."""
        start = moment.astimezone(self.zone)
        if not self.with_seconds:
            start = start.replace(second=0, microsecond=0)
        it = croniter(self.expression, start, second_at_beginning=self.with_seconds)
        nxt: datetime = it.get_next(datetime)
        return nxt.astimezone(UTC)


def parse_schedule(expression: str, time_zone: str | None = None) -> CronSchedule:
    """The schedule, or a ScheduleError that says what is wrong, in the user's words."""
    expression = " ".join(expression.split())
    if expression.startswith("@"):
        if expression.lower() not in CRON_MACROS:
            raise ScheduleError(f"cron {expression!r}: unknown macro (use one of {', '.join(CRON_MACROS)})")
    elif not 5 <= len(expression.split()) <= SECONDS_FIELDS:
        raise ScheduleError(f"cron {expression!r}: expected 5 fields, or 6 with seconds first")
    elif re.search(r"(^|\s)[Hh]", expression):
        raise ScheduleError(f"cron {expression!r}: hashed fields (H) are not supported")
    zone: tzinfo = UTC
    name = time_zone or "UTC"
    if time_zone:
        try:
            zone = ZoneInfo(time_zone)
        except (ZoneInfoNotFoundError, ValueError) as e:
            raise ScheduleError(f"timeZone {time_zone!r}: not a known IANA time zone ({e})") from e
    with_seconds = len(expression.split()) == SECONDS_FIELDS
    try:
        croniter.expand(expression, second_at_beginning=with_seconds, strict=True)
        # A valid expression that never matches (Feb 30) fails only when asked for a time.
        schedule = CronSchedule(expression, zone, name)
        schedule.next_after(datetime.now(UTC))
    except (CroniterError, ValueError, KeyError) as e:
        raise ScheduleError(f"cron {expression!r}: {e}") from e
    return schedule


def schedule_problem(expression: str, time_zone: str | None) -> str | None:
    """Why the expression cannot be scheduled, or None."""
    try:
        parse_schedule(expression, time_zone)
    except ScheduleError as e:
        return str(e)
    return None


MAX_RUN_OUTPUT = 512
"""Bytes of a run's output tail kept in status, per run."""


def output_tail(data: bytes, limit: int = MAX_RUN_OUTPUT) -> str:
    """The last `limit` bytes as text, cut at a character boundary (where errors usually are)."""
    tail = data[-limit:] if len(data) > limit else data
    while tail and len(data) > limit and 0x80 <= tail[0] <= 0xBF:
        tail = tail[1:]  # a UTF-8 continuation byte: the character started before the cut
    return tail.decode(errors="replace")


MAX_RUNS = 5
"""Runs kept in status: a placement's last ones, and the app's last ones over its placements."""


class Run(Protocol):
    @property
    def node(self) -> str: ...
    @property
    def schedule_time(self) -> datetime: ...
    @property
    def start_time(self) -> datetime: ...


R = TypeVar("R", bound=Run)


def latest_runs(*histories: Iterable[R], limit: int = MAX_RUNS) -> list[R]:
    """The newest `limit` runs of all `histories`, oldest first; one run reported twice (by the
    placement and already in the app's status) counts once, the later report winning."""
    by_key: dict[tuple[str, datetime, datetime], R] = {}
    for history in histories:
        for run in history:
            by_key[(run.node, run.schedule_time, run.start_time)] = run
    ordered = sorted(by_key.values(), key=lambda r: (r.start_time, r.schedule_time, r.node))
    return ordered[-limit:] if limit > 0 else []
