"""The owner's schedule (`--schedule`): when, in the owner's local time, the machine is lent.
Outside it the agent holds every container stopped (paused), as BOINC's "compute only between".

Grammar, entries separated by `;`: `DAYS [HH:MM-HH:MM]`, DAYS a comma list of days (`mon`…`sun`)
or ranges (`mon-fri`, `fri-mon` wraps), or `daily`. Without hours an entry is the whole day; a
range whose end is not after its start runs past midnight into the next day (`mon-fri
18:00-08:00` is each weeknight, Friday's to Saturday 08:00). `24:00` ends at midnight.

Pure: evaluated on a naive local datetime given by the caller (the clock is injected).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_TEXT = 500
MAX_ENTRIES = 32
HORIZON = timedelta(days=8)  # a schedule's next change is within a week, or it never changes
_HOURS = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")


@dataclass(frozen=True)
class Window:
    days: frozenset[int]  # 0 = Monday
    start: int  # minutes after midnight
    end: int  # minutes after midnight; <= start: into the next day

    def allows(self, when: datetime) -> bool:
        minute, day = when.hour * 60 + when.minute, when.weekday()
        if self.start < self.end:
            return day in self.days and self.start <= minute < self.end
        yesterday = (day - 1) % 7
        return (day in self.days and minute >= self.start) or (
            yesterday in self.days and minute < self.end
        )


@dataclass(frozen=True)
class Schedule:
    text: str
    windows: tuple[Window, ...]

    @classmethod
    def parse(cls, text: str) -> Schedule:
        """The schedule; ValueError with what is wrong."""
        if len(text) > MAX_TEXT:
            raise ValueError(f"a schedule is at most {MAX_TEXT} characters")
        entries = [e.strip() for e in text.split(";") if e.strip()]
        if not entries:
            raise ValueError("an empty schedule would never lend the machine")
        if len(entries) > MAX_ENTRIES:
            raise ValueError(f"a schedule has at most {MAX_ENTRIES} entries")
        return cls(text.strip(), tuple(_window(e) for e in entries))

    def allows(self, when: datetime) -> bool:
        return any(w.allows(when) for w in self.windows)

    def next_change(self, when: datetime) -> datetime | None:
        """The first minute after `when` at which `allows` differs (None: never, in a week)."""
        now = self.allows(when)
        step = when.replace(second=0, microsecond=0)
        end = when + HORIZON
        while step < end:
            step += timedelta(minutes=1)
            if self.allows(step) != now:
                return step
        return None


def _window(entry: str) -> Window:
    parts = entry.lower().split()
    if len(parts) not in (1, 2):
        raise ValueError(f"{entry!r}: expected DAYS [HH:MM-HH:MM]")
    days = _days(parts[0], entry)
    if len(parts) == 1:
        return Window(days, 0, 24 * 60)
    match = _HOURS.match(parts[1])
    if match is None:
        raise ValueError(f"{entry!r}: hours must be HH:MM-HH:MM")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2):
        raise ValueError(f"{entry!r}: not a time of day")
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if end == 24 * 60 and start == 0:
        return Window(days, 0, end)
    return Window(days, start, end % (24 * 60))


def _days(text: str, entry: str) -> frozenset[int]:
    if text in ("daily", "*"):
        return frozenset(range(7))
    days: set[int] = set()
    for item in text.split(","):
        first, _, last = item.partition("-")
        if first not in DAYS or (last and last not in DAYS):
            raise ValueError(f"{entry!r}: days are {', '.join(DAYS)} or ranges like mon-fri")
        a = DAYS.index(first)
        b = DAYS.index(last) if last else a
        days.update((a + i) % 7 for i in range((b - a) % 7 + 1))
    return frozenset(days)


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([dhms])")
_UNIT = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}


def parse_duration(text: str) -> float:
    """`2h`, `90m`, `1h30m`, `45s`, `1d`, or plain seconds; ValueError otherwise."""
    text = text.strip().lower()
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        seconds = float(text)
    else:
        parts = _DURATION.findall(text)
        if not parts or _DURATION.sub("", text).strip():
            raise ValueError(f"{text!r}: a duration like 2h, 90m, 1h30m or 45s")
        seconds = sum(float(n) * _UNIT[u] for n, u in parts)
    if not 0 < seconds <= 366 * 86400:
        raise ValueError(f"{text!r}: between a second and a year")
    return seconds
