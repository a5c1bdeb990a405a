"""``ybrewind repo info``: what a YSQL repository holds, what it can restore, how it is kept.

Read-only and cheap: one listing (with sizes), the base backups' ``base.json`` and the archiver's
status; no segment is read. The archiver's health comes from ``status.repository_status``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ybrewind import pitr
from ybrewind.archive import format as fmt
from ybrewind.archive.repo import Repository
from ybrewind.archive.retention import PLAN_KEY, RetentionPolicy
from ybrewind.archive.status import repository_status


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def _iso(us: int | None) -> str | None:
    return pitr.to_iso(us) if us else None


@dataclass
class RepositoryInventory:
    repository: str
    database: str | None
    source: str | None
    created_at: str | None
    base_backups: list[dict[str, Any]] = field(default_factory=list)
    unfinished_base_backups: list[str] = field(default_factory=list)
    segments: int = 0
    segment_bytes: int = 0
    transactions: int = 0
    first_commit: str | None = None
    last_commit: str | None = None
    complete_until: str | None = None  # the archiver confirmed every commit up to this time
    windows: list[dict[str, str]] = field(default_factory=list)
    total_bytes: int = 0
    retention: dict[str, Any] = field(default_factory=dict)
    schedule: dict[str, Any] = field(default_factory=dict)
    archiver: dict[str, Any] = field(default_factory=dict)
    prune_unfinished: bool = False

    def describe(self) -> str:
        lines = [
            f"repository    {self.repository} ({self.database or 'not initialized'}"
            + (f", from {self.source}" if self.source else "")
            + ")",
            f"size          {_size(self.total_bytes)} ({len(self.base_backups)} base backups, "
            f"{self.segments} segments of {_size(self.segment_bytes)}, {self.transactions} transactions)",
        ]
        lines += [f"restorable    {w['from']} .. {w['to']}" for w in self.windows] or ["restorable    nothing yet"]
        if self.complete_until:
            lines.append(f"complete to   {self.complete_until} (confirmed by the archiver)")
        for b in self.base_backups:
            lines.append(f"base backup   {b['time']}  {b['name']}  {_size(b['bytes'])}, {b['rows']} rows")
        lines += [f"unfinished    {name} (a base backup in progress or abandoned)" for name in self.unfinished_base_backups]
        lines.append(f"retention     {self.retention.get('policy', 'keep everything')}")
        if self.schedule.get("base_every_seconds"):
            lines.append(
                f"schedule      a base backup every {self.schedule['base_every_seconds']:g} s; last "
                f"{self.schedule.get('last_base') or '-'}, next {self.schedule.get('next_base') or '-'}"
                + (f"; LAST FAILED: {self.schedule['last_error']}" if self.schedule.get("last_error") else "")
            )
        a = self.archiver
        lines.append(
            f"archiver      {'running' if a.get('running') else 'not running'}"
            + (f", lag {a['lag_seconds']:.1f}s" if a.get("lag_seconds") is not None else "")
            + (f", confirmed {a['confirmed_lsn']}" if a.get("confirmed_lsn") else "")
            + (f", retained WAL {a['retained_wal_bytes']} bytes" if a.get("retained_wal_bytes") is not None else "")
        )
        if self.prune_unfinished:
            lines.append("prune         an interrupted prune is pending: the next prune finishes it")
        return "\n".join(lines)


def repository_inventory(repo: Repository) -> RepositoryInventory:
    info = repo.require_info()
    st = repo.status() or {}  # before the listing (see Repository.restore_listing)
    complete = st.get("complete_us") if isinstance(st.get("complete_us"), int) else None
    sizes = repo.storage.list_sizes()
    bases = repo.base_backups()
    segments = sorted(s for s in (fmt.parse_segment_key(k) for k in sizes) if s is not None)
    complete_names = {b.name for b in bases}
    base_dirs = {k.split("/")[1] for k in sizes if k.startswith(fmt.BASE_PREFIX) and k.count("/") >= 2}
    health = repository_status(repo)
    policy = RetentionPolicy.from_dict(st.get("retention"))
    return RepositoryInventory(
        repository=repo.url,
        database=info.source.get("database"),
        source=info.source.get("endpoint"),
        created_at=info.created_at,
        base_backups=[
            {
                "name": b.name,
                "time": pitr.to_iso(b.time_us),
                "lsn": f"{b.lsn:X}",
                "rows": b.rows,
                "bytes": sum(v for k, v in sizes.items() if k.startswith(f"{fmt.BASE_PREFIX}{b.name}/")),
            }
            for b in bases
        ],
        unfinished_base_backups=sorted(base_dirs - complete_names),
        segments=len(segments),
        segment_bytes=sum(v for k, v in sizes.items() if k.startswith(fmt.SEGMENTS_PREFIX)),
        transactions=sum(s.transactions for s in segments),
        first_commit=_iso(segments[0].first_commit_us) if segments else None,
        last_commit=_iso(segments[-1].last_commit_us) if segments else None,
        complete_until=_iso(complete),
        windows=[
            {"from": pitr.to_iso(w.start_us), "to": pitr.to_iso(w.end_us)}
            for w in pitr.restorable_windows(bases, segments, complete)
        ],
        total_bytes=sum(sizes.values()),
        retention={**policy.to_dict(), "policy": policy.describe()},
        schedule={
            "base_every_seconds": st.get("base_every_seconds"),
            "base_at": pitr.to_iso(st["base_at_us"])[11:16] if isinstance(st.get("base_at_us"), int) else None,
            "last_base": _iso(st.get("last_base_us")),
            "next_base": _iso(st.get("next_base_us")),
            "last_error": st.get("last_base_error"),
        },
        archiver={
            "running": health.running,
            "owner": health.archiver,
            "lag_seconds": health.lag_seconds,
            "confirmed_lsn": health.confirmed_lsn,
            "retained_wal_bytes": health.retained_wal_bytes,
            "status_updated": _iso(st.get("updated_us")),
        },
        prune_unfinished=PLAN_KEY in sizes,
    )
