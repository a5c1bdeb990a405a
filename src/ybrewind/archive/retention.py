"""Retention: which base backups and segments a repository may drop, and dropping them safely.

``plan_prune`` is pure: from the listing (base backups and segment names), the policy and the
current time it returns what may go. The rule: find the oldest base backup that must stay (the
newest N with ``keep_bases``; with ``recovery_window``, the newest one taken at or before
``now - window``, as a restore to that instant starts from it); the older base backups go, and
the segments that end before that base backup's consistent point (a restore from it or any later
base never reads them). The newest base backup and the newest segment always stay (the archiver's
status names the newest segment, and restores check it is there). Unfinished base backups (no
``base.json``: killed while being taken) go when their snapshot is older than both the kept base
backup and ``UNFINISHED_GRACE_US`` (a base backup still being taken is never that old).

``prune`` carries a plan out, resumable and safe beside a running archiver:

- the plan is stored first (``state/prune.json``), and a prune that finds one finishes it before
  planning again, so a prune killed midway is completed by the next one;
- base backups go first, oldest first, each by its ``base.json`` first (from then on it is an
  unfinished base backup that nothing reads); then segments, oldest first. At every moment the
  repository is valid: the remaining segments older than the oldest base backup are never read,
  and the chain check of a restore accepts a first needed segment whose predecessor ends before
  its base backup (``Repository.verify_restore``);
- the archiver only adds base backups and segments newer than anything a plan names, so the two
  never touch the same object. Two prunes exclude each other with a lock (``prune``).
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from ybrewind.archive import format as fmt
from ybrewind.archive.repo import Repository
from ybrewind.archive.storage import ObjectNotFound
from ybrewind.errors import UsageError
from ybrewind.files import seal_json, unseal_json
from ybrewind.progress import Progress

PLAN_KEY = "state/prune.json"
UNFINISHED_GRACE_US = 24 * 3_600_000_000
LOCK_NAME = "prune"


@dataclass(frozen=True)
class RetentionPolicy:
    """``keep_bases``: keep the newest N base backups; ``recovery_window_us``: keep every restore
    point of the last so many µs. Both: keep what either needs. Neither: keep everything."""

    keep_bases: int | None = None
    recovery_window_us: int | None = None

    def __post_init__(self) -> None:
        if self.keep_bases is not None and self.keep_bases < 1:
            raise UsageError(f"--keep-bases must be at least 1 (got {self.keep_bases})")
        if self.recovery_window_us is not None and self.recovery_window_us <= 0:
            raise UsageError("--recovery-window must be positive")

    @property
    def active(self) -> bool:
        return self.keep_bases is not None or self.recovery_window_us is not None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Any) -> RetentionPolicy:
        if not isinstance(d, dict):
            return cls()
        return cls(d.get("keep_bases"), d.get("recovery_window_us"))

    def describe(self) -> str:
        parts = []
        if self.keep_bases is not None:
            parts.append(f"keep the newest {self.keep_bases} base backup(s)")
        if self.recovery_window_us is not None:
            parts.append(f"recovery window {_duration(self.recovery_window_us)}")
        return " and ".join(parts) or "keep everything"


def _duration(us: int) -> str:
    """``7d``, ``36h``, ``90m``, ``6s``: the largest unit that divides it (else seconds)."""
    for unit, size in (("w", 604_800_000_000), ("d", 86_400_000_000), ("h", 3_600_000_000), ("m", 60_000_000)):
        if us % size == 0:
            return f"{us // size}{unit}"
    return f"{us / 1e6:g}s"


@dataclass
class PrunePlan:
    keep_from: str | None  # the oldest base backup kept
    bases: list[str] = field(default_factory=list)  # base backup names to drop, oldest first
    segments: list[str] = field(default_factory=list)  # segment keys to drop, oldest first

    @property
    def empty(self) -> bool:
        return not self.bases and not self.segments


def plan_prune(
    bases: list[fmt.BaseBackupInfo],
    segments: list[fmt.SegmentInfo],
    policy: RetentionPolicy,
    now_us: int,
    unfinished: list[str] | tuple[str, ...] = (),
) -> PrunePlan:
    """What ``policy`` lets go at ``now_us`` (see the module docstring). Pure.

    ``unfinished``: names of base backup directories without ``base.json``."""
    ordered = sorted(bases, key=lambda b: (b.time_us, b.lsn))
    if not ordered or not policy.active:
        return PrunePlan(ordered[0].name if ordered else None)
    keep_index = len(ordered) - 1  # the newest base backup always stays
    if policy.keep_bases is not None:
        keep_index = min(keep_index, max(0, len(ordered) - policy.keep_bases))
    if policy.recovery_window_us is not None:
        edge = now_us - policy.recovery_window_us
        at_or_before = [i for i, b in enumerate(ordered) if b.time_us <= edge]
        keep_index = min(keep_index, at_or_before[-1] if at_or_before else 0)
    keep = ordered[keep_index]
    newest_segment = max(segments).key if segments else None
    drop_segments = [s.key for s in sorted(segments) if s.last_lsn < keep.lsn and s.key != newest_segment]
    abandoned = [n for n in sorted(unfinished) if _snapshot_us(n) < min(keep.time_us, now_us - UNFINISHED_GRACE_US)]
    return PrunePlan(keep.name, abandoned + [b.name for b in ordered[:keep_index]], drop_segments)


def _snapshot_us(name: str) -> int:
    """The snapshot time in a base backup's name (``fmt.base_name``); unreadable: never old enough."""
    try:
        return int(name.rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return 2**63


@dataclass
class PruneResult:
    repository: str
    policy: str
    dry_run: bool
    keep_from: str | None
    bases: list[str]
    segments: int
    resumed: bool = False  # an interrupted prune's plan was finished first
    seconds: float = 0.0

    def describe(self) -> str:
        verb = "would drop" if self.dry_run else "dropped"
        lines = [
            f"{self.repository}: {self.policy}: {verb} {len(self.bases)} base backup(s) and {self.segments} segment(s)"
            + (" (finished an interrupted prune first)" if self.resumed else "")
        ]
        lines += [f"  base {name}" for name in self.bases]
        if self.keep_from:
            lines.append(f"oldest base backup kept: {self.keep_from}")
        return "\n".join(lines)


def prune(
    repo: Repository,
    policy: RetentionPolicy,
    *,
    dry_run: bool = False,
    now_us: int | None = None,
    progress: Progress | None = None,
) -> PruneResult:
    """Drop what ``policy`` lets go (see the module docstring); ``dry_run``: only say what."""
    started = time.monotonic()
    progress = progress or Progress()
    repo.require_info()
    now = now_us if now_us is not None else int(time.time() * 1e6)
    if dry_run:
        plan = plan_prune(repo.base_backups(), repo.segments(), policy, now, _unfinished(repo))
        return _result(repo, policy, plan, True, False, started)
    with repo.storage.lock(LOCK_NAME, f"prune {socket.gethostname()}:{os.getpid()}"):
        unfinished = _stored_plan(repo)
        if unfinished is not None:
            progress.log(
                f"finishing an interrupted prune: {len(unfinished.bases)} base backup(s), "
                f"{len(unfinished.segments)} segment(s)"
            )
            _execute(repo, unfinished, progress)
        plan = plan_prune(repo.base_backups(), repo.segments(), policy, now, _unfinished(repo))
        if not plan.empty:
            repo.storage.put(PLAN_KEY, seal_json({"keep_from": plan.keep_from, "bases": plan.bases,
                                                  "segments": plan.segments, "created_us": now}))
            _execute(repo, plan, progress)
        if unfinished is not None and plan.empty:
            plan = PrunePlan(plan.keep_from, unfinished.bases, unfinished.segments)
        return _result(repo, policy, plan, False, unfinished is not None, started)


def _result(
    repo: Repository, policy: RetentionPolicy, plan: PrunePlan, dry_run: bool, resumed: bool, started: float
) -> PruneResult:
    return PruneResult(
        repo.url, policy.describe(), dry_run, plan.keep_from, plan.bases, len(plan.segments), resumed,
        round(time.monotonic() - started, 3),
    )


def _unfinished(repo: Repository) -> list[str]:
    keys = repo.storage.list(fmt.BASE_PREFIX)
    names = {k.split("/")[1] for k in keys if k.count("/") >= 2}
    return sorted(n for n in names if f"{fmt.BASE_PREFIX}{n}/base.json" not in keys)


def _stored_plan(repo: Repository) -> PrunePlan | None:
    try:
        data = repo.storage.get(PLAN_KEY)
    except ObjectNotFound:
        return None
    d = unseal_json(data, f"{repo.url}/{PLAN_KEY}", required=True)
    return PrunePlan(d.get("keep_from"), list(d.get("bases", [])), list(d.get("segments", [])))


def _execute(repo: Repository, plan: PrunePlan, progress: Progress) -> None:
    """Delete in the order that keeps the repository valid at every step; objects already gone are fine."""
    for name in plan.bases:
        prefix = f"{fmt.BASE_PREFIX}{name}/"
        repo.storage.delete(prefix + "base.json")  # first: the base backup is no longer listed
        for key in repo.storage.list(prefix):
            repo.storage.delete(key)
        progress.log(f"dropped base backup {name}")
    for key in plan.segments:
        repo.storage.delete(key)
    repo.storage.delete(PLAN_KEY)
