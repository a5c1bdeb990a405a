"""A change-log repository: metadata, base backups and segments on a ``Storage``.

This is the only module that knows the repository layout (see docs/repository-format.md); it
knows nothing about SQL. The archiver writes through it, restore reads through it.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ybrewind.archive import format as fmt
from ybrewind.archive.storage import ObjectNotFound, Storage, open_storage
from ybrewind.errors import DumpIntegrityError, UsageError

LOCK_NAME = "archiver"


@dataclass
class RepositoryOptions:
    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None


class Repository:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage

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

    def put_segment(self, segment: fmt.Segment) -> fmt.SegmentInfo:
        data, info = fmt.encode_segment(segment)
        self.storage.put(info.key, data)
        return info

    def read_segment(self, info: fmt.SegmentInfo) -> fmt.Segment:
        try:
            data = self.storage.get(info.key)
        except ObjectNotFound:
            raise DumpIntegrityError(f"segment {info.key} is missing from {self.url}") from None
        return fmt.decode_segment(data, info, name=f"{self.url}/{info.key}")

    # -- base backups ----------------------------------------------------------------------------
    def base_backups(self) -> list[fmt.BaseBackupInfo]:
        """Complete base backups (those whose base.json exists), oldest first."""
        out = []
        for key in self.storage.list(fmt.BASE_PREFIX):
            if key.endswith("/base.json"):
                out.append(fmt.BaseBackupInfo.from_json(self.storage.get(key)))
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

    # -- archiver status -----------------------------------------------------------------------------
    def write_status(self, status: dict[str, Any]) -> None:
        self.storage.put(fmt.STATUS_KEY, json.dumps(status, indent=2).encode())

    def status(self) -> dict[str, Any] | None:
        try:
            return dict(json.loads(self.storage.get(fmt.STATUS_KEY)))
        except ObjectNotFound:
            return None
