"""``ybrewind archive status``: what a repository holds and how its archiver is doing.

Read-only; works on a repository whose source is unreachable (the archiver's own status record,
refreshed every few seconds while it runs, is the source of truth for lag and liveness).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from ybrewind.archive.repo import LOCK_NAME, Repository
from ybrewind.archive.storage import lock_status

STALE_AFTER_S = 30.0


def _iso(us: int | None) -> str | None:
    return datetime.fromtimestamp(us / 1e6, UTC).isoformat() if us else None


@dataclass
class RepositoryStatus:
    repository: str
    database: str | None
    running: bool
    last_commit: str | None
    lag_seconds: float | None
    confirmed_lsn: str | None
    retained_wal_bytes: int | None
    segments: int
    transactions: int
    base_backups: list[str]
    first_restorable: str | None
    archiver: str | None

    def describe(self) -> str:
        lines = [
            f"repository    {self.repository} ({self.database or 'not initialized'})",
            f"archiver      {'running' if self.running else 'not running'}"
            + (f" ({self.archiver})" if self.archiver else ""),
            f"last commit   {self.last_commit or '-'}"
            + (f"  (lag {self.lag_seconds:.1f}s)" if self.lag_seconds is not None else ""),
            f"confirmed     {self.confirmed_lsn or '-'}   retained WAL {self.retained_wal_bytes if self.retained_wal_bytes is not None else '-'} bytes",
            f"segments      {self.segments} ({self.transactions} transactions)",
            f"base backups  {len(self.base_backups)}"
            + (f", oldest {self.first_restorable}" if self.first_restorable else ""),
        ]
        return "\n".join(lines)


def repository_status(repo: Repository) -> RepositoryStatus:
    info = repo.info()
    segments = repo.segments()
    bases = repo.base_backups()
    st = repo.status() or {}
    now_us = time.time() * 1e6
    holder = lock_status(repo.storage, LOCK_NAME)
    fresh = bool(st.get("updated_us")) and now_us - st["updated_us"] < STALE_AFTER_S * 1e6
    running = bool(holder) and bool(st.get("running")) and fresh
    last_commit_us = segments[-1].last_commit_us if segments else (bases[-1].time_us if bases else None)
    lag = None
    if running:
        # Idle sources have nothing to archive: lag is the age of the archiver's last confirmation
        # when it has confirmed everything, else the age of the newest archived commit.
        lag = max(0.0, (now_us - st["updated_us"]) / 1e6)
        if st.get("pending_transactions"):
            lag = max(lag, (now_us - (last_commit_us or now_us)) / 1e6)
    return RepositoryStatus(
        repository=repo.url,
        database=info.source.get("database") if info else None,
        running=running,
        last_commit=_iso(last_commit_us),
        lag_seconds=None if lag is None else round(lag, 3),
        confirmed_lsn=st.get("confirmed"),
        retained_wal_bytes=st.get("retained_wal_bytes"),
        segments=len(segments),
        transactions=sum(s.transactions for s in segments),
        base_backups=[b.name for b in bases],
        first_restorable=_iso(bases[0].time_us) if bases else None,
        archiver=str(st.get("owner")) if running else None,
    )
