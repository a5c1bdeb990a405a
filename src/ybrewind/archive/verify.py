"""``ybrewind repo verify``: check a whole YSQL repository, naming every damaged or missing object.

Uses the checks restores run (``Repository.verify_base``, ``check_link``, ``check_newest_segment``,
the seals of the metadata records) on everything the repository holds rather than one restore's
share, and goes on after a problem so that one run lists them all:

- ``repository.json`` and ``state/archiver.json``: their seals;
- every complete base backup: ``base.json``'s seal, every file against the dump's manifest;
- every segment: sha256 (its name), a full decode (header, every transaction present);
- the chain: from the first segment the oldest base backup needs to the newest, each segment names
  its predecessor; the newest segment the archiver's status names is listed.

Segments older than the oldest base backup (left by an interrupted prune, or kept by none) are
checked but are not part of the chain.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ybrewind.archive import format as fmt
from ybrewind.archive.repo import Repository
from ybrewind.archive.storage import ObjectNotFound
from ybrewind.errors import DumpIntegrityError


@dataclass
class VerifyResult:
    repository: str
    base_backups: int = 0
    segments: int = 0
    objects: int = 0
    bytes: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def describe(self) -> str:
        head = (
            f"{self.repository}: {self.base_backups} base backup(s), {self.segments} segment(s), "
            f"{self.objects} objects, {self.bytes} bytes checked: "
            + ("OK" if self.ok else f"{len(self.problems)} problem(s)")
        )
        return "\n".join([head] + [f"  damaged: {p}" for p in self.problems] + [f"  note: {n}" for n in self.notes])


def verify_repository(repo: Repository) -> VerifyResult:
    result = VerifyResult(repo.url)
    try:
        repo.require_info()
    except DumpIntegrityError as e:
        result.problems.append(e.message)
    try:
        status = repo.status()
    except DumpIntegrityError as e:
        result.problems.append(e.message)
        status = None
    sizes = repo.storage.list_sizes()
    result.objects = len(sizes)
    result.bytes = sum(sizes.values())
    bases = _bases(repo, sizes, result)
    segments = _segments(repo, sizes, result)
    try:
        repo.check_newest_segment(status, sorted(segments))
    except DumpIntegrityError as e:
        result.problems.append(e.message)
    _chain(repo, bases, segments, result)
    return result


def _bases(repo: Repository, sizes: dict[str, int], result: VerifyResult) -> list[fmt.BaseBackupInfo]:
    names = sorted({k.split("/")[1] for k in sizes if k.startswith(fmt.BASE_PREFIX) and k.count("/") >= 2})
    bases = []
    for name in names:
        key = f"{fmt.BASE_PREFIX}{name}/base.json"
        if key not in sizes:
            result.notes.append(f"{repo.url}/{fmt.BASE_PREFIX}{name} has no base.json: unfinished (in progress or abandoned)")
            continue
        try:
            base = fmt.BaseBackupInfo.from_json(repo.storage.get(key), f"{repo.url}/{key}")
            repo.verify_base(base)
            bases.append(base)
        except (DumpIntegrityError, ObjectNotFound) as e:
            result.problems.append(getattr(e, "message", str(e)))
        finally:
            repo.drop_staging()  # S3: one base backup's copy on local disk at a time
    result.base_backups = len(bases)
    return sorted(bases, key=lambda b: (b.time_us, b.lsn))


def _segments(
    repo: Repository, sizes: dict[str, int], result: VerifyResult
) -> dict[fmt.SegmentInfo, dict[str, Any] | None]:
    """Listed segments with their headers (None: damaged, reported; its place in the chain is kept)."""
    headers: dict[fmt.SegmentInfo, dict[str, Any] | None] = {}
    for key in sorted(k for k in sizes if k.startswith(fmt.SEGMENTS_PREFIX)):
        info = fmt.parse_segment_key(key)
        if info is None:
            result.problems.append(f"{repo.url}/{key} is not a segment name")
            continue
        name = f"{repo.url}/{key}"
        try:
            data = repo.storage.get(key)
            header = fmt.segment_header(data, info, name)
            fmt.decode_segment(data, info, name)
            headers[info] = header
        except ObjectNotFound:
            result.notes.append(f"{name} was deleted while checking (a prune)")
        except DumpIntegrityError as e:
            result.problems.append(e.message)
            headers[info] = None
    result.segments = len(headers)
    return headers


def _chain(
    repo: Repository,
    bases: list[fmt.BaseBackupInfo],
    segments: dict[fmt.SegmentInfo, dict[str, Any] | None],
    result: VerifyResult,
) -> None:
    if not bases:
        if segments or not result.problems:
            result.problems.append(f"{repo.url} holds no complete base backup: nothing can be restored")
        return
    oldest = bases[0]
    previous: int | None = None
    older = 0
    for info in sorted(segments):
        if info.last_lsn < oldest.lsn:
            older += 1  # before every base backup: no restore reads it
            continue
        header = segments[info]
        try:
            if header is not None:
                repo.check_link(header, info, oldest, previous)
        except DumpIntegrityError as e:
            result.problems.append(e.message)
        previous = info.last_lsn
    if older:
        result.notes.append(f"{older} segment(s) end before the oldest base backup: no restore needs them (prune drops them)")
