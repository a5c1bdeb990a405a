"""When the archiver takes its next scheduled base backup (``--base-every``, ``--base-at``). Pure functions.

``--base-every 24h`` alone: a new base backup that long after the newest one in the repository.
With ``--base-at 02:00`` (UTC) the schedule is anchored: base backups are due at 02:00 and then
every ``--base-every`` after it, so a restarted archiver keeps the same times of day.
"""

from __future__ import annotations

import re

from ybrewind.errors import UsageError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$", re.IGNORECASE)
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}
DAY_US = 86_400_000_000


def parse_duration(text: str, option: str) -> float:
    """``90s``, ``15m``, ``24h``, ``7d``, ``2w`` or plain seconds, as seconds (positive)."""
    m = _DURATION.match(text)
    if not m:
        raise UsageError(f"invalid {option} {text!r} (e.g. 30s, 15m, 24h, 7d)")
    seconds = float(m[1]) * _UNIT_S[(m[2] or "s").lower()]
    if seconds <= 0:
        raise UsageError(f"{option} must be positive (got {text!r})")
    return seconds


def parse_clock(text: str) -> int:
    """``HH:MM`` (UTC) as microseconds after midnight."""
    m = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*", text)
    if not m or int(m[1]) > 23 or int(m[2]) > 59:
        raise UsageError(f"invalid --base-at {text!r}: use HH:MM (UTC), e.g. 02:00")
    return (int(m[1]) * 60 + int(m[2])) * 60_000_000


def next_base_due(newest_base_us: int | None, now_us: int, every_us: int, at_us: int | None = None) -> int:
    """Unix µs at which the next base backup is due (``<= now_us``: take it now).

    Without ``at_us``: ``every_us`` after the newest base backup (now when there is none).
    With ``at_us`` (µs after midnight UTC): the first slot of the anchored grid (midnight + at_us,
    then every ``every_us``) that is later than the newest base backup; a slot missed while the
    archiver was down is taken at once, but only one.
    """
    if every_us <= 0:
        raise ValueError("every_us must be positive")
    if at_us is None:
        return now_us if newest_base_us is None else newest_base_us + every_us
    if newest_base_us is None:
        newest_base_us = now_us - 1  # no base yet: the next slot from now
    anchor = (newest_base_us // DAY_US) * DAY_US + at_us
    if anchor > newest_base_us:
        # Step back to the grid slot at or before the newest base backup, then one forward.
        anchor -= -(-(anchor - newest_base_us) // every_us) * every_us
    return anchor + ((newest_base_us - anchor) // every_us + 1) * every_us
