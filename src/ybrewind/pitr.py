"""Point-in-time planning: parse target times and pick what a restore needs. Pure functions.

Restore semantics (as PostgreSQL's recovery_target_time): transactions are replayed in commit
(LSN) order; replay stops before the first transaction whose commit time is later than the target,
so the result is a state the source really had. The restorable window runs from the oldest base
backup's snapshot time to the newest archived commit, or later, to the time up to which the
archiver confirmed the archive complete (an idle source commits nothing, yet time passes).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ybrewind.archive.format import BaseBackupInfo, SegmentInfo
from ybrewind.errors import UsageError

_RELATIVE = re.compile(r"^now\s*(?:-\s*(\d+(?:\.\d+)?)\s*(us|ms|s|m|h|d|w))?$", re.IGNORECASE)
_UNITS_US = {
    "us": 1,
    "ms": 1_000,
    "s": 1_000_000,
    "m": 60_000_000,
    "h": 3_600_000_000,
    "d": 86_400_000_000,
    "w": 7 * 86_400_000_000,
}


def now_us() -> int:
    return int(datetime.now(UTC).timestamp() * 1_000_000)


def to_iso(us: int) -> str:
    return datetime.fromtimestamp(us / 1_000_000, UTC).isoformat(timespec="microseconds")


def _to_us(dt: datetime) -> int:
    delta = dt - datetime(1970, 1, 1, tzinfo=UTC)
    return delta // timedelta(microseconds=1)


def parse_time(text: str, timezone: str | None = None, now: int | None = None) -> int:
    """A target time as Unix microseconds.

    Accepts ISO-8601 with an offset (``2026-11-21T10:15:00.123456+01:00``, ``...Z``), relative
    times (``now``, ``now-15m``, units us/ms/s/m/h/d/w) and Unix microseconds (digits only). A
    time without an offset needs ``timezone`` (an IANA name such as ``Europe/Paris`` or ``UTC``).
    """
    raw = text.strip()
    if not raw:
        raise UsageError("empty target time")
    m = _RELATIVE.match(raw)
    if m:
        base = now if now is not None else now_us()
        if m.group(1) is None:
            return base
        return base - int(float(m.group(1)) * _UNITS_US[m.group(2).lower()])
    if re.fullmatch(r"\d+", raw):
        value = int(raw)
        if not 10**14 <= value < 10**17:  # 1973 .. 5138: anything else is not microseconds
            raise UsageError(f"{raw!r} does not look like Unix microseconds (16 digits for recent dates)")
        return value
    try:
        dt = datetime.fromisoformat(raw.replace("Z", "+00:00").replace(" ", "T", 1))
    except ValueError:
        raise UsageError(
            f"cannot read time {raw!r}: use ISO-8601 with an offset (2026-11-21T10:15:00+01:00), "
            "now-15m, or Unix microseconds"
        ) from None
    if dt.tzinfo is None:
        if timezone is None:
            raise UsageError(f"time {raw!r} has no UTC offset: add one (e.g. +00:00) or pass --timezone")
        try:
            dt = dt.replace(tzinfo=ZoneInfo(timezone))
        except (ZoneInfoNotFoundError, ValueError):
            raise UsageError(f"unknown time zone {timezone!r}") from None
    return _to_us(dt)


@dataclass(frozen=True)
class Window:
    start_us: int
    end_us: int

    def describe(self) -> str:
        return f"{to_iso(self.start_us)} .. {to_iso(self.end_us)}"


@dataclass(frozen=True)
class RestorePlan:
    base: BaseBackupInfo
    segments: list[SegmentInfo]
    target_us: int | None  # replay transactions committed at or before this time...
    target_lsn: int | None  # ...or up to and including this commit LSN; both None: everything

    def includes(self, commit_lsn: int, commit_us: int) -> bool | None:
        """True: replay; False: skip (already in the base); None: stop, the target is reached."""
        if commit_lsn < self.base.lsn:
            return False
        if self.target_lsn is not None and commit_lsn > self.target_lsn:
            return None
        if self.target_us is not None and commit_us > self.target_us:
            return None
        return True


def restorable_windows(
    bases: list[BaseBackupInfo], segments: list[SegmentInfo], complete_us: int | None = None
) -> list[Window]:
    """The time ranges a restore can reach; several when a base backup starts after a gap.

    ``complete_us``: every commit up to then is archived (the archiver's status, read before the
    listing); it extends the newest window.
    """
    if not bases:
        return []
    windows: list[Window] = []
    ordered = sorted(bases, key=lambda b: b.time_us)
    for base in ordered:
        reach = max([base.time_us] + [s.last_commit_us for s in segments if s.last_lsn >= base.lsn])
        if windows and base.time_us <= windows[-1].end_us:
            windows[-1] = Window(windows[-1].start_us, max(windows[-1].end_us, reach))
        else:
            windows.append(Window(base.time_us, reach))
    if complete_us is not None and complete_us > windows[-1].end_us:
        windows[-1] = Window(windows[-1].start_us, complete_us)
    return windows


def plan(
    bases: list[BaseBackupInfo],
    segments: list[SegmentInfo],
    *,
    target_us: int | None = None,
    target_lsn: int | None = None,
    complete_us: int | None = None,
) -> RestorePlan:
    """Pick the newest base backup at or before the target, and the segments after it."""
    windows = restorable_windows(bases, segments, complete_us)
    if not windows:
        raise UsageError("the repository has no complete base backup yet: nothing can be restored")
    describe = ", ".join(w.describe() for w in windows)
    if target_us is not None:
        if not any(w.start_us <= target_us <= w.end_us for w in windows):
            raise UsageError(f"{to_iso(target_us)} is outside the restorable window ({describe})")
        candidates = [b for b in bases if b.time_us <= target_us]
    elif target_lsn is not None:
        candidates = [b for b in bases if b.lsn <= target_lsn]
        last = max([s.last_lsn for s in segments] + [b.lsn for b in bases])
        if not candidates or target_lsn > last:
            raise UsageError(
                f"LSN {target_lsn:X} is outside the archive (base backups from "
                f"{min(b.lsn for b in bases):X}, last archived commit {last:X})"
            )
    else:
        candidates = list(bases)
    base = max(candidates, key=lambda b: (b.time_us, b.lsn))
    needed = [
        s
        for s in segments
        if s.last_lsn >= base.lsn
        and (target_us is None or s.first_commit_us <= target_us or s.first_lsn <= base.lsn)
        and (target_lsn is None or s.first_lsn <= target_lsn)
    ]
    return RestorePlan(base, sorted(needed), target_us, target_lsn)
