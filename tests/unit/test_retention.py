"""Retention planning, the base backup schedule and the completeness-extended window (pure functions)."""

from __future__ import annotations

import pytest

from ybrewind.archive.format import BaseBackupInfo, SegmentInfo
from ybrewind.archive.retention import RetentionPolicy, plan_prune
from ybrewind.archive.schedule import DAY_US, next_base_due, parse_clock, parse_duration
from ybrewind.errors import UsageError
from ybrewind.pitr import plan, restorable_windows

H = 3_600_000_000
T0 = 1_795_000_000_000_000 - (1_795_000_000_000_000 % DAY_US)  # a midnight UTC


def base(lsn: int, time_us: int) -> BaseBackupInfo:
    return BaseBackupInfo(f"{lsn:016X}-{time_us}", lsn, time_us, [], 0, 0, "s")


def seg(first: int, last: int, t1: int, t2: int) -> SegmentInfo:
    return SegmentInfo(first, last, t1, t2, 1, f"{first:064x}")


# Bases every 10 h from T0 at LSN 100, 200, 300, 400; a segment every 5 h.
BASES = [base(100 * (i + 1), T0 + i * 10 * H) for i in range(4)]
SEGMENTS = [seg(100 + 50 * i, 140 + 50 * i, T0 + i * 5 * H, T0 + i * 5 * H + H) for i in range(8)]
NOW = T0 + 38 * H


def restorable_from(bases: list[BaseBackupInfo], segments: list[SegmentInfo], t: int) -> bool:
    try:
        p = plan(bases, segments, target_us=t)
    except UsageError:
        return False
    # Every segment holding a transaction after the base's consistent point, up to t, is there.
    needed = [s for s in SEGMENTS if s.last_lsn >= p.base.lsn and s.first_commit_us <= t]
    return all(s in p.segments for s in needed)


def apply(plan_: object, bases: list[BaseBackupInfo], segments: list[SegmentInfo]) -> tuple[list, list]:
    dropped_b = set(plan_.bases)  # type: ignore[attr-defined]
    dropped_s = set(plan_.segments)  # type: ignore[attr-defined]
    return [b for b in bases if b.name not in dropped_b], [s for s in segments if s.key not in dropped_s]


def test_keep_bases_drops_older_bases_and_the_segments_only_they_need() -> None:
    p = plan_prune(BASES, SEGMENTS, RetentionPolicy(keep_bases=2), NOW)
    assert p.keep_from == BASES[2].name
    assert p.bases == [BASES[0].name, BASES[1].name]
    # Segments ending before LSN 300 go; the one spanning it (250..290 ends before; 300..340 stays).
    assert p.segments == [s.key for s in SEGMENTS if s.last_lsn < 300]
    bases, segments = apply(p, BASES, SEGMENTS)
    for t in range(BASES[2].time_us, SEGMENTS[-1].last_commit_us + 1, H // 2):
        assert restorable_from(bases, segments, t), t


def test_recovery_window_keeps_the_base_at_or_before_its_edge() -> None:
    window = 20 * H  # edge at T0 + 18 h: the base at T0 + 10 h is needed for it
    p = plan_prune(BASES, SEGMENTS, RetentionPolicy(recovery_window_us=window), NOW)
    assert p.keep_from == BASES[1].name
    assert p.bases == [BASES[0].name]
    bases, segments = apply(p, BASES, SEGMENTS)
    for t in range(NOW - window, SEGMENTS[-1].last_commit_us + 1, H // 4):
        assert restorable_from(bases, segments, t), t
    # The edge exactly on a base backup's time keeps that base, not the one before.
    p = plan_prune(BASES, SEGMENTS, RetentionPolicy(recovery_window_us=NOW - BASES[2].time_us), NOW)
    assert p.keep_from == BASES[2].name


def test_both_policies_keep_what_either_needs() -> None:
    p = plan_prune(BASES, SEGMENTS, RetentionPolicy(keep_bases=1, recovery_window_us=20 * H), NOW)
    assert p.keep_from == BASES[1].name
    p = plan_prune(BASES, SEGMENTS, RetentionPolicy(keep_bases=3, recovery_window_us=H), NOW)
    assert p.keep_from == BASES[1].name


def test_nothing_goes_without_a_policy_or_when_everything_is_needed() -> None:
    assert plan_prune(BASES, SEGMENTS, RetentionPolicy(), NOW).empty
    assert plan_prune(BASES, SEGMENTS, RetentionPolicy(keep_bases=10), NOW).empty
    assert plan_prune(BASES, SEGMENTS, RetentionPolicy(recovery_window_us=100 * H), NOW).empty
    assert plan_prune([], SEGMENTS, RetentionPolicy(keep_bases=1), NOW).empty


def test_newest_base_and_newest_segment_always_stay() -> None:
    # An idle source: the newest base is newer than every segment; keep_bases=1 keeps it, and
    # the newest segment (named by the archiver's status) stays although no restore reads it.
    bases = [*BASES, base(10_000, NOW)]
    p = plan_prune(bases, SEGMENTS, RetentionPolicy(keep_bases=1), NOW + H)
    assert p.keep_from == bases[-1].name
    assert SEGMENTS[-1].key not in p.segments
    assert p.segments == [s.key for s in SEGMENTS[:-1]]
    p = plan_prune(bases, SEGMENTS, RetentionPolicy(recovery_window_us=1), NOW + H)
    assert p.keep_from == bases[-1].name


def test_policy_errors() -> None:
    with pytest.raises(UsageError, match="at least 1"):
        RetentionPolicy(keep_bases=0)
    with pytest.raises(UsageError, match="positive"):
        parse_duration("0s", "--recovery-window")
    with pytest.raises(UsageError, match="invalid --base-every"):
        parse_duration("daily", "--base-every")
    with pytest.raises(UsageError, match="HH:MM"):
        parse_clock("25:00")


def test_durations_and_clock() -> None:
    assert parse_duration("24h", "x") == 86400
    assert parse_duration("7d", "x") == 7 * 86400
    assert parse_duration("1.5m", "x") == 90
    assert parse_duration("30", "x") == 30
    assert parse_clock("02:30") == (2 * 60 + 30) * 60_000_000


def test_next_base_due_every() -> None:
    assert next_base_due(None, T0, 24 * H) == T0
    assert next_base_due(T0 + 5 * H, T0 + 6 * H, 24 * H) == T0 + 29 * H


def test_next_base_due_anchored() -> None:
    at = parse_clock("02:00")
    # Newest base at 13:00: the next is 02:00 the day after.
    assert next_base_due(T0 + 13 * H, T0 + 14 * H, 24 * H, at) == T0 + 26 * H
    # Newest base at 01:00: 02:00 the same day.
    assert next_base_due(T0 + H, T0 + H + 1, 24 * H, at) == T0 + 2 * H
    # Every 6 h anchored at 02:00: 02, 08, 14, 20. Newest at 09:30 -> 14:00.
    assert next_base_due(T0 + 9 * H + H // 2, T0 + 10 * H, 6 * H, at) == T0 + 14 * H
    # Exactly on a slot: the next one.
    assert next_base_due(T0 + 8 * H, T0 + 8 * H, 6 * H, at) == T0 + 14 * H
    # The archiver was down for two days: the missed slot is due now (one, not a backlog).
    due = next_base_due(T0 + 3 * H, T0 + 60 * H, 24 * H, at)
    assert due == T0 + 26 * H and due <= T0 + 60 * H


def test_window_extends_to_the_confirmed_complete_time() -> None:
    end = SEGMENTS[-1].last_commit_us
    assert restorable_windows(BASES, SEGMENTS)[-1].end_us == end
    assert restorable_windows(BASES, SEGMENTS, end + H)[-1].end_us == end + H
    assert restorable_windows(BASES, SEGMENTS, end - H)[-1].end_us == end  # never shortens it
    with pytest.raises(UsageError, match="outside the restorable window"):
        plan(BASES, SEGMENTS, target_us=end + H // 2)
    p = plan(BASES, SEGMENTS, target_us=end + H // 2, complete_us=end + H)
    assert p.base == BASES[-1] and SEGMENTS[-1] in p.segments


def test_unfinished_base_backups_go_only_when_old_and_older_than_the_kept_base() -> None:
    day = 24 * H
    now = T0 + 10 * day
    bases = [base(100, T0), base(200, T0 + 5 * day), base(300, now - H)]
    unfinished = [f"{50:016X}-{T0 - day}", f"{250:016X}-{T0 + 6 * day}", f"{400:016X}-{now - 60_000_000}"]
    p = plan_prune(bases, SEGMENTS, RetentionPolicy(keep_bases=2), now, unfinished)
    # Older than the kept base (T0+5d) and a day old: the first only. The one at T0+6d is newer
    # than the kept base; the newest may be a base backup being taken right now.
    assert p.bases == [unfinished[0], bases[0].name]
    p = plan_prune(bases, SEGMENTS, RetentionPolicy(keep_bases=3), now, unfinished)
    assert p.bases == [unfinished[0]]  # older than the oldest base, and days old: abandoned
    p = plan_prune(bases, SEGMENTS, RetentionPolicy(keep_bases=1), now, ["junk"])
    assert p.bases == [b.name for b in bases[:2]]  # a name without a time is never dropped
