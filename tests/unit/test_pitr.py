"""Time parsing and restore planning (pure functions, no server)."""

from __future__ import annotations

import re

import pytest

from ybrewind.archive.format import BaseBackupInfo, SegmentInfo, parse_segment_key
from ybrewind.errors import UsageError
from ybrewind.pitr import parse_time, plan, restorable_windows, to_iso
from ybrewind.ysql.clone import native_clone_sql

T0 = 1_795_000_000_000_000  # 2026-11-18T11:06:40Z


def test_parse_time_forms() -> None:
    assert parse_time("2026-11-21T10:15:00.123456+01:00") == parse_time("2026-11-21T09:15:00.123456Z")
    assert parse_time("2026-11-21T09:15:00.123456Z") == 1_795_252_500_123_456
    assert parse_time("now", now=T0) == T0
    assert parse_time("now-15m", now=T0) == T0 - 15 * 60_000_000
    assert parse_time("now - 2h", now=T0) == T0 - 7_200_000_000
    assert parse_time("now-1.5s", now=T0) == T0 - 1_500_000
    assert parse_time(str(T0)) == T0
    assert parse_time("2026-11-21 10:15:00", timezone="Europe/Paris") == parse_time("2026-11-21T09:15:00Z")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2026-11-21T10:15:00", "no UTC offset"),
        ("yesterday", "cannot read time"),
        ("1700000000", "does not look like Unix microseconds"),
        ("", "empty"),
    ],
)
def test_parse_time_errors(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_time(text)


def test_unknown_timezone() -> None:
    with pytest.raises(UsageError, match="unknown time zone"):
        parse_time("2026-11-21T10:15:00", timezone="Mars/Olympus")


def base(lsn: int, t: int) -> BaseBackupInfo:
    return BaseBackupInfo(f"{lsn:016X}-{t}", lsn, t, [], 0, 0, "ybrewind")


def seg(first: int, last: int, t1: int, t2: int) -> SegmentInfo:
    return SegmentInfo(first, last, t1, t2, 3, "ab" * 32)


SEGMENTS = [seg(100, 200, T0 + 10, T0 + 20), seg(210, 300, T0 + 30, T0 + 40), seg(310, 400, T0 + 50, T0 + 60)]
BASES = [base(90, T0 + 5), base(305, T0 + 45)]


def test_plan_picks_newest_base_at_or_before_target() -> None:
    p = plan(BASES, SEGMENTS, target_us=T0 + 35)
    assert p.base == BASES[0] and p.segments == SEGMENTS[:2]
    p = plan(BASES, SEGMENTS, target_us=T0 + 55)
    assert p.base == BASES[1] and p.segments == [SEGMENTS[2]]
    assert p.includes(300, T0 + 40) is False  # before the base: already in it
    assert p.includes(310, T0 + 50) is True
    assert p.includes(400, T0 + 60) is None  # after the target: stop
    latest = plan(BASES, SEGMENTS)
    assert latest.base == BASES[1] and latest.target_us is None


def test_plan_errors_state_the_window() -> None:
    assert [(w.start_us, w.end_us) for w in restorable_windows(BASES, SEGMENTS)] == [(T0 + 5, T0 + 60)]
    with pytest.raises(UsageError, match=re.escape(f"outside the restorable window ({to_iso(T0 + 5)} .. ")):
        plan(BASES, SEGMENTS, target_us=T0 + 1)
    with pytest.raises(UsageError, match="outside"):
        plan(BASES, SEGMENTS, target_us=T0 + 61)
    with pytest.raises(UsageError, match="no complete base backup"):
        plan([], SEGMENTS, target_us=T0 + 30)


def test_windows_with_a_gap() -> None:
    later = base(10_000, T0 + 1000)
    windows = restorable_windows([BASES[0], later], SEGMENTS[:1])
    assert [(w.start_us, w.end_us) for w in windows] == [(T0 + 5, T0 + 20), (T0 + 1000, T0 + 1000)]


def test_segment_key_round_trip() -> None:
    s = SEGMENTS[1]
    assert parse_segment_key(s.key) == s
    assert parse_segment_key("segments/garbage.seg.zst") is None


def test_native_clone_sql_quotes_names() -> None:
    text = native_clone_sql('sh"op', "shop copy", T0).as_string(None)
    assert text == f'CREATE DATABASE "shop copy" TEMPLATE "sh""op" AS OF {T0}'
