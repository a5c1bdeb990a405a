"""The dump manifest: what a dump directory holds, how to check it, and its format version.

Shared by YSQL and YCQL dumps. The manifest is written last (atomically), so a directory without
one is an unfinished dump. Every file is listed with its sha256 and size on disk; ``verify()``
checks them all and names the first file that is missing, truncated or corrupt. The manifest
carries its own checksum (``files.seal_json``): a damaged field no file checksum covers (row
counts, post-data order, the keyspace model) is found before anything is loaded.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ybrewind import __version__
from ybrewind.errors import DumpIntegrityError
from ybrewind.files import atomic_write, fsync_dir, seal_json, sha256_file, unseal_json

MANIFEST_NAME = "manifest.json"
FORMAT = "ybrewind-dump"
FORMAT_VERSION = 1


@dataclass
class FileEntry:
    path: str  # relative to the dump directory, '/' separated
    kind: str  # pre-data, data, post-data, restore, schema
    sha256: str
    bytes: int
    table: list[str] | None = None  # [schema, name] (YSQL) or [keyspace, table] (YCQL)
    rows: int | None = None
    compressed: bool = False


@dataclass
class Manifest:
    api: str  # "ysql" or "ycql"
    source: dict[str, Any]  # server version, dialect, database, display endpoint (never a password)
    dialect: str  # the dialect the scripts are written for
    snapshot: dict[str, Any]  # time, lsn / read time / scan window
    compression: str = "none"
    options: dict[str, Any] = field(default_factory=dict)
    objects: dict[str, Any] = field(default_factory=dict)
    files: list[FileEntry] = field(default_factory=list)
    post_data: list[list[Any]] = field(default_factory=list)  # [phase, group] per post-data statement
    warnings: list[str] = field(default_factory=list)
    created_by: str = f"ybrewind {__version__}"
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    def to_json(self) -> bytes:
        return seal_json(asdict(self))

    def write(self, directory: Path) -> None:
        with atomic_write(directory / MANIFEST_NAME) as w:
            w.write(self.to_json())
        fsync_dir(directory)

    def files_of(self, kind: str) -> list[FileEntry]:
        return [f for f in self.files if f.kind == kind]

    @property
    def total_rows(self) -> int:
        return sum(f.rows or 0 for f in self.files)


def read(directory: Path) -> Manifest:
    path = directory / MANIFEST_NAME
    if not directory.is_dir():
        raise DumpIntegrityError(f"{directory} is not a dump directory")
    if not path.exists():
        raise DumpIntegrityError(f"{path} is missing: not a ybrewind dump, or the dump did not finish")
    try:
        raw = path.read_bytes()
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise DumpIntegrityError(f"{path} is not valid JSON ({' '.join(str(e).split())})") from None
    except OSError as e:
        raise DumpIntegrityError(f"{path} cannot be read ({e.strerror or e})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise DumpIntegrityError(f"{path} is not a ybrewind dump manifest")
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        raise DumpIntegrityError(
            f"{path} has format version {version!r}; this ybrewind reads version {FORMAT_VERSION} "
            "(use the ybrewind release that wrote it)"
        )
    # The version first: a manifest from another release deserves that message, not "corrupt".
    data = unseal_json(raw, str(path), required=True)
    try:
        files = [FileEntry(**f) for f in data.pop("files")]
        return Manifest(**data, files=files)
    except (TypeError, KeyError, AttributeError) as e:
        raise DumpIntegrityError(f"{path} is malformed ({e})") from None


def verify(directory: Path, manifest: Manifest | None = None, jobs: int = 4) -> Manifest:
    """Check every file against the manifest; raise DumpIntegrityError naming the first bad one."""
    manifest = manifest or read(directory)

    def check(entry: FileEntry) -> str | None:
        path = directory / entry.path
        if not path.is_file():
            return f"{entry.path} is missing"
        size = path.stat().st_size
        if size != entry.bytes:
            return f"{entry.path} is {size} bytes, the manifest says {entry.bytes} (truncated or altered)"
        if sha256_file(path) != entry.sha256:
            return f"{entry.path} is corrupt (sha256 mismatch)"
        return None

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        problems = [p for p in pool.map(check, manifest.files) if p]
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise DumpIntegrityError(f"dump {directory}: {problems[0]}{more}")
    return manifest
