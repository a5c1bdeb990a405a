"""A change-log repository: metadata, base backups and segments on a ``Storage``.

This is the only module that knows the repository layout (see docs/repository-format.md); it
knows nothing about SQL. The archiver writes through it, restore reads through it.

``verify_restore`` is a restore's preflight: before the target is touched it checks the chosen
base backup (every file against its manifest) and every segment the replay needs (checksum,
header, the ``prev_last_lsn`` chain, and no newest segment missing according to the archiver's
status). For S3 the objects are downloaded once into a local staging directory, which the
restore then reads: what was verified is what is applied.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ybrewind import manifest as mf
from ybrewind.archive import format as fmt
from ybrewind.archive.storage import ObjectNotFound, Storage, open_storage
from ybrewind.errors import DumpIntegrityError, UsageError
from ybrewind.files import atomic_file, seal_json, unseal_json

LOCK_NAME = "archiver"


@dataclass
class RepositoryOptions:
    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None


class Repository:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._last_segment: tuple[int | None] | None = None  # (last_lsn of the newest segment,), once known
        self._staging: tempfile.TemporaryDirectory[str] | None = None
        self._staged: dict[str, Path] = {}  # key (segment) or base name -> local copy, verified

    @classmethod
    def open(cls, url: str, options: RepositoryOptions | None = None) -> Repository:
        o = options or RepositoryOptions()
        return cls(open_storage(url, endpoint_url=o.endpoint_url, region=o.region, profile=o.profile))

    @property
    def url(self) -> str:
        return self.storage.url

    # -- metadata ------------------------------------------------------------------------------
    def info(self) -> fmt.RepositoryInfo | None:
        try:
            data = self.storage.get(fmt.REPOSITORY_KEY)
        except ObjectNotFound:
            return None
        return fmt.RepositoryInfo.from_json(data, f"{self.url}/{fmt.REPOSITORY_KEY}")

    def require_info(self) -> fmt.RepositoryInfo:
        info = self.info()
        if info is None:
            if self.storage.list(fmt.SEGMENTS_PREFIX) or self.storage.list(fmt.BASE_PREFIX):
                raise DumpIntegrityError(
                    f"{self.url}/{fmt.REPOSITORY_KEY} is missing, but the repository holds segments or base backups"
                )
            raise UsageError(
                f"{self.url} is not a ybrewind repository (no {fmt.REPOSITORY_KEY}); "
                "create one with `ybrewind archive start SOURCE REPO`"
            )
        return info

    def write_info(self, info: fmt.RepositoryInfo) -> None:
        self.storage.put(fmt.REPOSITORY_KEY, info.to_json())

    @contextmanager
    def lock(self, owner: str) -> Iterator[Any]:
        with self.storage.lock(LOCK_NAME, owner) as held:
            yield held

    # -- segments --------------------------------------------------------------------------------
    def segments(self) -> list[fmt.SegmentInfo]:
        """Every archived segment, in LSN order (the listing is the index: no object is read)."""
        found = [fmt.parse_segment_key(k) for k in self.storage.list(fmt.SEGMENTS_PREFIX)]
        return sorted(s for s in found if s is not None)

    def last_segment_lsn(self) -> int | None:
        """``last_lsn`` of the newest segment (listed once; then kept up to date by ``put_segment``)."""
        if self._last_segment is None:
            segments = self.segments()
            self._last_segment = (segments[-1].last_lsn if segments else None,)
        return self._last_segment[0]

    def put_segment(self, segment: fmt.Segment) -> fmt.SegmentInfo:
        data, info = fmt.encode_segment(segment, prev_last_lsn=self.last_segment_lsn())
        self.storage.put(info.key, data)
        self._last_segment = (info.last_lsn,)
        return info

    def _segment_bytes(self, info: fmt.SegmentInfo) -> bytes:
        staged = self._staged.get(info.key)
        if staged is not None:
            return staged.read_bytes()
        try:
            return self.storage.get(info.key)
        except ObjectNotFound:
            raise DumpIntegrityError(f"segment {self.url}/{info.key} is missing") from None

    def read_segment(self, info: fmt.SegmentInfo) -> fmt.Segment:
        return fmt.decode_segment(self._segment_bytes(info), info, name=f"{self.url}/{info.key}")

    # -- base backups ----------------------------------------------------------------------------
    def base_backups(self) -> list[fmt.BaseBackupInfo]:
        """Complete base backups (those whose base.json exists), oldest first."""
        out = []
        for key in self.storage.list(fmt.BASE_PREFIX):
            if key.endswith("/base.json"):
                out.append(fmt.BaseBackupInfo.from_json(self.storage.get(key), f"{self.url}/{key}"))
        return sorted(out, key=lambda b: (b.time_us, b.lsn))

    def put_base_backup(self, dump_dir: Path, info: fmt.BaseBackupInfo) -> None:
        """Upload a dump directory; base.json goes last, so a partial upload is never listed."""
        prefix = f"{fmt.BASE_PREFIX}{info.name}/"
        files = sorted(p for p in dump_dir.rglob("*") if p.is_file())
        for path in files:
            rel = path.relative_to(dump_dir).as_posix()
            self.storage.put_file(prefix + rel, path)
        info.files = [p.relative_to(dump_dir).as_posix() for p in files]
        self.storage.put(prefix + "base.json", info.to_json())

    @contextmanager
    def fetch_base_backup(self, info: fmt.BaseBackupInfo) -> Iterator[Path]:
        """The base backup as a local dump directory (downloaded to a temp dir for S3)."""
        staged = self._staged.get(info.name)
        if staged is not None:
            yield staged
            return
        local = getattr(self.storage, "local_path", None)
        if callable(local):
            yield local(f"{fmt.BASE_PREFIX}{info.name}")
            return
        with tempfile.TemporaryDirectory(prefix="ybrewind-base-") as tmp:
            root = Path(tmp)
            for rel in info.files:
                target = root / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                self.storage.get_file(f"{fmt.BASE_PREFIX}{info.name}/{rel}", target)
            yield root

    def restore_listing(self) -> tuple[int | None, list[fmt.BaseBackupInfo], list[fmt.SegmentInfo]]:
        """(time up to which the archiver confirmed the archive complete, base backups, segments).

        The status is read first: it claims completeness only for segments stored before it was
        written, which a listing made after it includes.
        """
        complete = (self.status() or {}).get("complete_us")
        return (complete if isinstance(complete, int) else None), self.base_backups(), self.segments()

    # -- archiver status -----------------------------------------------------------------------------
    def write_status(self, status: dict[str, Any]) -> None:
        """Store the archiver's status, with the newest segment's LSN (so a lost tail is seen)."""
        record = {**status, "last_segment_lsn": self.last_segment_lsn()}
        self.storage.put(fmt.STATUS_KEY, seal_json(record))

    def status(self) -> dict[str, Any] | None:
        try:
            data = self.storage.get(fmt.STATUS_KEY)
        except ObjectNotFound:
            return None
        return unseal_json(data, f"{self.url}/{fmt.STATUS_KEY}", required=True)

    # -- restore preflight ---------------------------------------------------------------------------
    def verify_restore(self, base: fmt.BaseBackupInfo, segments: list[fmt.SegmentInfo]) -> None:
        """Check everything a restore from ``base`` through ``segments`` will read; raise naming the object.

        Nothing is written anywhere but the local staging directory (S3), which is removed when
        the check fails, or else with this object. See the module docstring.
        """
        try:
            self._verify_restore(base, segments)
        except BaseException:
            self.drop_staging()
            raise

    def drop_staging(self) -> None:
        """Remove the local copies made by ``verify_restore`` (S3)."""
        self._staged.clear()
        if self._staging is not None:
            self._staging.cleanup()
            self._staging = None

    def _verify_restore(self, base: fmt.BaseBackupInfo, segments: list[fmt.SegmentInfo]) -> None:
        status = self.status()  # read before listing: a segment stored meanwhile only adds to the listing
        listed = self.segments()
        if status is None and listed:
            # The archiver writes its status before its first segment and never deletes it.
            raise DumpIntegrityError(f"{self.url}/{fmt.STATUS_KEY} is missing, but the repository holds segments")
        self.check_newest_segment(status, listed)
        self.verify_base(base)
        previous: int | None = None
        for info in sorted(segments):
            data = self._segment_bytes(info)
            header = fmt.segment_header(data, info, f"{self.url}/{info.key}")
            self.check_link(header, info, base, previous)
            previous = info.last_lsn
            self._stage(info.key, data)

    def check_newest_segment(self, status: dict[str, Any] | None, listed: list[fmt.SegmentInfo]) -> None:
        """The newest segment the archiver's status names is listed (else the tail was lost)."""
        newest = status.get("last_segment_lsn") if status else None
        if newest is not None and not any(s.last_lsn == newest for s in listed):
            have = f"LSN {listed[-1].last_lsn:X}" if listed else "no segment"
            raise DumpIntegrityError(
                f"{self.url}: segment {_missing_key(newest)} is missing: the archiver stored it, the newest "
                f"listed ends at {have}"
            )

    def check_link(
        self, header: dict[str, Any], info: fmt.SegmentInfo, base: fmt.BaseBackupInfo, previous: int | None
    ) -> None:
        """``info`` follows ``previous`` (the last LSN of the segment before it), or, as the first segment
        a restore from ``base`` reads, follows one that ends before the base's consistent point: any
        segment before it holds only what the base has (and may have been pruned)."""
        prev = header.get("prev_last_lsn")
        if prev is not None and (prev >= base.lsn if previous is None else prev != previous):
            raise DumpIntegrityError(f"{self.url}: segment {_missing_key(prev)}, before {info.key}, is missing")

    def check_scan_chain(self, segments: list[fmt.SegmentInfo]) -> None:
        """YCQL scan repositories: scans are numbered 0, 1, 2... with none missing, the newest too.

        Each scan segment holds the changes since the one before, so a missing scan loses writes.
        """
        for expected, info in enumerate(segments):
            if info.first_lsn != expected:
                raise DumpIntegrityError(
                    f"{self.url}: scan segment {fmt.SEGMENTS_PREFIX}{expected:016X}-* is missing "
                    f"(found scan {info.first_lsn} next)"
                )
        last_scan = (self.status() or {}).get("last_scan")
        seq = last_scan.get("seq") if isinstance(last_scan, dict) else None
        if isinstance(seq, int) and seq >= len(segments):
            raise DumpIntegrityError(
                f"{self.url}: scan segment {fmt.SEGMENTS_PREFIX}{seq:016X}-* is missing: the archiver stored it"
            )

    def _stage(self, key: str, data: bytes) -> None:
        if getattr(self.storage, "local_path", None) is not None:
            return  # local repository: read in place
        if self._staging is None:
            self._staging = tempfile.TemporaryDirectory(prefix="ybrewind-restore-")
        path = Path(self._staging.name) / "segments" / key.rsplit("/", 1)[-1]
        path.parent.mkdir(exist_ok=True)
        with atomic_file(path) as f:
            f.write(data)
        self._staged[key] = path

    def verify_base(self, base: fmt.BaseBackupInfo) -> None:
        """Every file of the base backup against its manifest (S3: staged locally, see drop_staging)."""
        where = f"{self.url}/{fmt.BASE_PREFIX}{base.name}"
        local = getattr(self.storage, "local_path", None)
        if callable(local):
            directory = local(f"{fmt.BASE_PREFIX}{base.name}")
        else:
            if self._staging is None:
                self._staging = tempfile.TemporaryDirectory(prefix="ybrewind-restore-")
            directory = Path(self._staging.name) / "base" / base.name
            for rel in base.files:
                target = directory / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    self.storage.get_file(f"{fmt.BASE_PREFIX}{base.name}/{rel}", target)
                except ObjectNotFound:
                    raise DumpIntegrityError(f"{where}/{rel} is missing") from None
        for rel in base.files:
            if not (directory / rel).is_file():
                raise DumpIntegrityError(f"{where}/{rel} is missing")
        try:
            mf.verify(directory)
        except DumpIntegrityError as e:
            # Name the object in the repository, not the staging directory it was checked in.
            raise DumpIntegrityError(
                e.message.replace(f"dump {directory}", f"base backup {where}").replace(str(directory), where)
            ) from None
        if not callable(local):
            self._staged[base.name] = directory


def _missing_key(last_lsn: int) -> str:
    """The name pattern of a segment known only by its last LSN (its other name parts are lost)."""
    return f"{fmt.SEGMENTS_PREFIX}*-{last_lsn:016X}-*"
