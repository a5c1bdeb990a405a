"""Where an archive repository's objects live: a local directory or an S3 bucket prefix.

A repository is named by a URL (``/var/backups/repo``, ``file:///var/backups/repo`` or
``s3://bucket/prefix``) and holds opaque objects under '/'-separated keys such as
``segments/000000000100A0B8-...seg.zst``. This module knows nothing about what the objects
contain. It promises:

* atomic writes: a reader sees a whole object or none (local: temp file + fsync + rename +
  directory fsync; S3: one PutObject, or a multipart upload, which completes atomically);
* one-line ``StorageError`` for every failure, naming the key, path or bucket, never a secret;
* an exclusive repository lock that a crashed holder cannot keep forever (local: ``flock``,
  dropped by the kernel when the holder dies; S3: a lock object written with a conditional PUT
  and kept alive by heartbeats, which another process may take over once they stop).

S3 access goes through boto3 and honors the usual AWS settings (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_PROFILE``, ``AWS_DEFAULT_REGION``,
``AWS_ENDPOINT_URL``/``AWS_ENDPOINT_URL_S3``, ``AWS_MAX_ATTEMPTS``), so MinIO and other
S3-compatible stores work. Transient failures (throttling, 5xx, resets, timeouts) are retried
with backoff by botocore itself. Stores that reject botocore's default CRC checksums can be
served with ``AWS_REQUEST_CHECKSUM_CALCULATION=when_required``.
"""

from __future__ import annotations

import abc
import errno
import fcntl
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO
from urllib.parse import urlsplit

import boto3
import botocore.session
from boto3.exceptions import RetriesExceededError, S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    EndpointConnectionError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
    ProxyConnectionError,
    ReadTimeoutError,
    ResponseStreamingError,
    SSLError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from ybrewind import __version__
from ybrewind.errors import RepositoryLockedError, StorageError, UsageError
from ybrewind.files import CHUNK, atomic_file, fsync_dir, storage_error

__all__ = [
    "LocalStorage",
    "ObjectNotFound",
    "RepositoryLock",
    "S3Storage",
    "Storage",
    "check_key",
    "lock_status",
    "open_storage",
]

log = logging.getLogger(__name__)

DEFAULT_STALE_AFTER = 60.0
# Total attempts per S3 request (first try included) unless AWS_MAX_ATTEMPTS or the profile says
# otherwise. botocore's default of 3 gives up within a few seconds; an archiver would rather
# ride out a short S3 or network hiccup (backoff is capped at 20 s per attempt).
DEFAULT_MAX_ATTEMPTS = 10
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 60.0
MULTIPART_THRESHOLD = 64 << 20
MULTIPART_CHUNKSIZE = 16 << 20
TRANSFER_CONCURRENCY = 8

NO_CREDENTIALS = (
    "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
    "or choose a profile with AWS_PROFILE / --profile"
)


class ObjectNotFound(StorageError):
    """The repository has no object under the requested key."""


# --------------------------------------------------------------------------------------------
# Keys


def check_key(key: str) -> str:
    """Return ``key`` if it is a valid relative '/'-separated object key, else raise StorageError.

    Components may not be empty, '.', '..' or start with '.': names starting with a dot are
    reserved for in-progress temporary files, which therefore never show up in ``list()``.
    """
    if not isinstance(key, str) or not key:
        raise StorageError("invalid object key: empty")
    if key.startswith("/"):
        raise StorageError(f"invalid object key {key!r}: must be relative to the repository")
    for part in key.split("/"):
        _check_part(key, part)
    return key


def _check_part(key: str, part: str) -> None:
    if not part:
        raise StorageError(f"invalid object key {key!r}: empty path component")
    if part in (".", ".."):
        raise StorageError(f"invalid object key {key!r}: '{part}' is not allowed")
    if part.startswith("."):
        raise StorageError(f"invalid object key {key!r}: names starting with '.' are reserved")
    if any(ord(c) < 0x20 or c == "\x7f" for c in part):
        # A newline in a key would break one-line messages and line-oriented listings.
        raise StorageError(f"invalid object key {key!r}: control characters are not allowed")


def _check_prefix(prefix: str) -> str:
    """A listing prefix: a key, a key followed by '/', a partial last component, or ''."""
    if prefix == "":
        return prefix
    if prefix.startswith("/"):
        raise StorageError(f"invalid key prefix {prefix!r}: must be relative to the repository")
    *dirs, last = prefix.split("/")
    for part in dirs:
        _check_part(prefix, part)
    if last in (".", ".."):
        raise StorageError(f"invalid key prefix {prefix!r}: '{last}' is not allowed")
    return prefix


def _lock_key(name: str) -> str:
    if "/" in name:
        raise StorageError(f"invalid lock name {name!r}: must not contain '/'")
    return check_key(f"{name}.lock")


# --------------------------------------------------------------------------------------------
# Locks


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _new_record(owner: str) -> dict[str, Any]:
    now = _now_iso()
    return {
        "owner": owner,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "since": now,
        "heartbeat": now,
        # Identifies this acquisition: owner/host/pid can repeat (a restarted archiver in a
        # container is often pid 1 on the same host name).
        "token": uuid.uuid4().hex,
    }


def _describe_holder(info: dict[str, Any]) -> str:
    owner = info.get("owner") or "an unknown owner"
    return f"{owner} (pid {info.get('pid', '?')} on host {info.get('host', '?')} since {info.get('since', '?')})"


def _locked_message(url: str, info: dict[str, Any], age: float | None = None, stale_after: float | None = None) -> str:
    message = f"repository {url} is locked by {_describe_holder(info)}"
    if age is not None and stale_after is not None:
        message += f"; last heartbeat {age:.0f}s ago, it may be taken over after {stale_after:g}s without one"
    return message


class RepositoryLock(abc.ABC):
    """An exclusive lock on a repository, acquired by ``Storage.lock()``.

    It is held from ``lock()`` until ``release()`` or the end of the ``with`` block. The holder
    calls ``refresh()`` regularly (the archiver does at every segment): on S3 that is the
    heartbeat that keeps others from taking the lock over, and it raises
    ``RepositoryLockedError`` if the lock has been lost, so the holder stops writing.
    """

    def __init__(self, url: str, name: str, record: dict[str, Any]) -> None:
        self.url = url
        self.name = name
        self._record = record
        self.released = False
        # The record of a stale holder this lock replaced, if any, for the caller to report.
        self.taken_over_from: dict[str, Any] | None = None

    def holder(self) -> dict[str, Any]:
        """Who holds the lock (us): owner, host, pid, since, heartbeat."""
        return dict(self._record)

    @abc.abstractmethod
    def refresh(self, *, force: bool = False) -> None:
        """Prove we are alive; raise RepositoryLockedError if the lock was taken from us."""

    @abc.abstractmethod
    def release(self) -> None:
        """Give the lock up; idempotent, never raises (a lock we fail to drop goes stale)."""

    def __enter__(self) -> RepositoryLock:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} on {self.url} held by {_describe_holder(self._record)}>"


def lock_status(
    storage: Storage, name: str, *, stale_after: float = DEFAULT_STALE_AFTER, include_stale: bool = False
) -> dict[str, Any] | None:
    """Describe the live holder of lock ``name``, or None if nobody holds it.

    The dict carries the holder's owner, host, pid, since and ``live`` (True). A local lock is
    live exactly while its process runs. An S3 lock is live while its heartbeat is at most
    ``stale_after`` seconds old, and the dict adds ``heartbeat_age``; with ``include_stale`` a
    stale S3 lock is described too (``live`` False) instead of being reported as None.
    """
    return storage.lock_status(name, stale_after=stale_after, include_stale=include_stale)


# --------------------------------------------------------------------------------------------
# Storage interface


class Storage(abc.ABC):
    """Objects under '/'-separated keys; see the module docstring for the guarantees."""

    url: str  # for display: never contains credentials

    @abc.abstractmethod
    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key``, replacing any previous object, atomically."""

    @abc.abstractmethod
    def put_file(self, key: str, path: Path) -> None:
        """Store the contents of a (large) local file under ``key``, atomically."""

    @abc.abstractmethod
    def get(self, key: str) -> bytes:
        """The object's bytes; ObjectNotFound if there is none."""

    @abc.abstractmethod
    def get_file(self, key: str, path: Path) -> None:
        """Copy the object into local file ``path`` (created 0600, replaced atomically)."""

    @abc.abstractmethod
    def exists(self, key: str) -> bool: ...

    def list(self, prefix: str = "") -> list[str]:
        """All keys starting with ``prefix`` (recursively), sorted, relative to the repository root."""
        return sorted(self.list_sizes(prefix))

    @abc.abstractmethod
    def list_sizes(self, prefix: str = "") -> dict[str, int]:
        """``list``, with each object's size in bytes (one listing, no object is read)."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; a missing object is not an error."""

    @abc.abstractmethod
    def lock(self, name: str, owner: str, stale_after: float = DEFAULT_STALE_AFTER) -> RepositoryLock:
        """Take the exclusive lock ``name`` or raise RepositoryLockedError naming its holder.

        Use as ``with storage.lock("archiver", owner) as lock: ...``. ``stale_after`` matters
        on S3 only: a lock whose heartbeat is older than that may be taken over.
        """

    @abc.abstractmethod
    def lock_status(
        self, name: str, *, stale_after: float = DEFAULT_STALE_AFTER, include_stale: bool = False
    ) -> dict[str, Any] | None:
        """See the module function ``lock_status``."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}>"


def open_storage(
    url: str,
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    profile: str | None = None,
    max_attempts: int | None = None,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    read_timeout: float = DEFAULT_READ_TIMEOUT,
) -> Storage:
    """Open the repository at ``url``: a local path, ``file:///path`` or ``s3://bucket[/prefix]``.

    Nothing is read or created yet: a local root directory appears on the first write, and S3
    credentials and the bucket are checked by the first request. ``max_attempts`` (total tries
    per S3 request) and the timeouts only concern S3.
    """
    if url.startswith("s3://"):
        return _open_s3(url, endpoint_url, region, profile, max_attempts, connect_timeout, read_timeout)
    if "://" in url:
        scheme = url.split("://", 1)[0]
        if scheme != "file":
            raise UsageError(f"unsupported repository URL scheme {scheme}://: use a local path or s3://bucket/prefix")
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise UsageError(f"invalid repository URL {url}: a file:// URL cannot name a remote host")
        url = parts.path
    if not url:
        raise UsageError("empty repository path")
    return LocalStorage(Path(url).expanduser().absolute())


# --------------------------------------------------------------------------------------------
# Local directory


def _read_error(path: Path, error: OSError) -> StorageError:
    if error.errno in (errno.EACCES, errno.EPERM):
        return StorageError(f"permission denied reading {path}")
    return StorageError(f"cannot read {path}: {error.strerror or error}")


class _LocalLock(RepositoryLock):
    def __init__(self, url: str, name: str, record: dict[str, Any], fd: int) -> None:
        super().__init__(url, name, record)
        self._fd = fd

    def refresh(self, *, force: bool = False) -> None:
        """Nothing to do: the kernel holds a flock for as long as our process lives."""

    def release(self) -> None:
        if self.released:
            return
        self.released = True
        with suppress(OSError):
            os.ftruncate(self._fd, 0)  # no stale holder details left behind
        os.close(self._fd)  # closing the last descriptor drops the flock


class LocalStorage(Storage):
    """A repository in a local (or NFS-mounted) directory; created 0700 on the first write."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = str(root)

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    def _ensure_dir(self, directory: Path) -> None:
        # Path.mkdir(parents=True) would create the intermediate directories with the default
        # mode; create each missing level 0700 and fsync its parent so it survives a crash.
        missing: list[Path] = []
        d = directory
        while not d.is_dir() and d != d.parent:
            missing.append(d)
            d = d.parent
        for d in reversed(missing):
            try:
                os.mkdir(d, 0o700)
            except FileExistsError:
                if not d.is_dir():
                    raise StorageError(f"cannot create directory {d}: a file is in the way") from None
                continue  # a concurrent writer created it
            except OSError as e:
                raise storage_error(d, e) from None
            try:
                fsync_dir(d.parent)
            except OSError as e:
                raise storage_error(d, e) from None

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        self._ensure_dir(path.parent)
        with atomic_file(path) as f:
            f.write(data)

    def put_file(self, key: str, path: Path) -> None:
        target = self._path(key)
        try:
            source = open(path, "rb")  # noqa: SIM115 - closed below; opened first so errors name the source
        except OSError as e:
            raise _read_error(path, e) from None
        with source:
            self._ensure_dir(target.parent)
            with atomic_file(target) as f:
                _copy(source, f)

    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise ObjectNotFound(f"object {key} not found in repository {self.url}") from None
        except OSError as e:
            raise _read_error(path, e) from None

    def get_file(self, key: str, path: Path) -> None:
        source_path = self._path(key)
        try:
            source = open(source_path, "rb")  # noqa: SIM115 - closed below
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise ObjectNotFound(f"object {key} not found in repository {self.url}") from None
        except OSError as e:
            raise _read_error(source_path, e) from None
        with source, atomic_file(path) as f:
            _copy(source, f)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def local_path(self, key: str) -> Path:
        """Where ``key`` (an object, or a prefix of objects) lives on disk, for zero-copy reads."""
        return self._path(key.rstrip("/"))

    def list_sizes(self, prefix: str = "") -> dict[str, int]:
        _check_prefix(prefix)
        directory, _, partial = prefix.rpartition("/")
        base = self.root.joinpath(*directory.split("/")) if directory else self.root
        keys: dict[str, int] = {}
        self._walk(base, f"{directory}/" if directory else "", partial, keys)
        return keys

    def _walk(self, directory: Path, key_prefix: str, partial: str, keys: dict[str, int]) -> None:
        """Collect keys under ``directory`` whose first component starts with ``partial``."""
        try:
            entries = list(os.scandir(directory))
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as e:
            raise _read_error(directory, e) from None
        for entry in entries:
            # Hidden names are temp files of writes in progress (and never valid keys).
            if entry.name.startswith(".") or not entry.name.startswith(partial):
                continue
            if entry.is_dir(follow_symlinks=False):
                self._walk(Path(entry.path), f"{key_prefix}{entry.name}/", "", keys)
            elif entry.is_file():
                try:
                    keys[key_prefix + entry.name] = entry.stat().st_size
                except FileNotFoundError:
                    continue  # deleted meanwhile (a prune)

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            pass
        except OSError as e:
            raise storage_error(path, e) from None
        # No directory fsync: a deleted object that reappears after a crash is only deleted again.

    def _lock_path(self, name: str) -> Path:
        return self.root / _lock_key(name)

    def lock(self, name: str, owner: str, stale_after: float = DEFAULT_STALE_AFTER) -> RepositoryLock:
        # flock rather than a lock file's mere existence: the kernel drops it when the holder
        # dies, even on SIGKILL, so a crashed archiver never blocks its restart. Locks belong to
        # the open file description, so a second lock() in the same process conflicts too.
        path = self._lock_path(name)
        self._ensure_dir(self.root)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as e:
            raise storage_error(path, e) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            info = _read_lock_fd(fd)
            os.close(fd)
            raise RepositoryLockedError(_locked_message(self.url, info)) from None
        except OSError as e:  # e.g. ENOLCK on a network filesystem without lock support
            os.close(fd)
            raise StorageError(f"cannot lock {path}: {e.strerror or e}") from None
        record = _new_record(owner)
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(record).encode(), 0)
            os.fsync(fd)
        except OSError as e:
            os.close(fd)
            raise storage_error(path, e) from None
        return _LocalLock(self.url, name, record, fd)

    def lock_status(
        self, name: str, *, stale_after: float = DEFAULT_STALE_AFTER, include_stale: bool = False
    ) -> dict[str, Any] | None:
        path = self._lock_path(name)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise _read_error(path, e) from None
        try:
            # A shared probe: two status checks never disturb each other, and a lock() racing
            # with this probe fails only for the microseconds it lasts.
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return {**_read_lock_fd(fd), "live": True}
        finally:
            os.close(fd)
        return None


def _read_lock_fd(fd: int) -> dict[str, Any]:
    try:
        data = os.pread(fd, 1 << 16, 0)
        info = json.loads(data)
        if isinstance(info, dict):
            return info
    except (OSError, ValueError):
        pass
    # The holder has the flock but has not written its details yet (or they are damaged).
    return {"owner": "an unknown owner"}


def _copy(source: BinaryIO, target: BinaryIO) -> None:
    while chunk := source.read(CHUNK):
        target.write(chunk)


# --------------------------------------------------------------------------------------------
# S3

_CREDENTIAL_CODES = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "TokenRefreshRequired",
    "InvalidClientTokenId",
}
_ACCESS_CODES = {"AccessDenied", "AllAccessDisabled", "AccountProblem"}
_LOST_RACE_CODES = {"PreconditionFailed", "ConditionalRequestConflict"}
_UNREACHABLE: list[tuple[type[BaseException], str]] = [
    (SSLError, "TLS handshake or certificate check failed"),
    (ProxyConnectionError, "cannot connect through the proxy"),
    (EndpointConnectionError, "connection failed"),
    (ConnectTimeoutError, "connect timed out"),
    (ReadTimeoutError, "read timed out"),
    (ConnectionClosedError, "connection closed before a response"),
    (ResponseStreamingError, "connection broken while reading the response"),
    (IncompleteReadError, "response cut short"),
    (BotoConnectionError, "connection failed"),
    (HTTPClientError, "HTTP connection error"),
]
# Errors while reading a GetObject body: they happen after botocore has returned the response,
# so its retry machinery never sees them (see S3Storage._get_object).
_BODY_ERRORS = (ResponseStreamingError, IncompleteReadError, ReadTimeoutError, ConnectionClosedError)
_BODY_ATTEMPTS = 3


def _display_endpoint(endpoint: str | None) -> str:
    """The endpoint URL without any user:password part."""
    if not endpoint:
        return "(default AWS endpoint)"
    scheme, sep, rest = endpoint.partition("://")
    # Split at the last '@', not with urlsplit: a secret key may contain '/', which urlsplit
    # would take for the start of the path.
    if sep and "@" in rest:
        return f"{scheme}://{rest.rsplit('@', 1)[1]}"
    return endpoint


def _s3_error(error: BaseException, *, target: str, bucket: str, endpoint: str) -> StorageError:
    """Turn a boto3/botocore failure into a one-line StorageError (never quoting credentials).

    ``target`` is what the request was about (``s3://bucket/key``); by the time an error gets
    here botocore has already retried it if it was transient.
    """
    if isinstance(error, S3UploadFailedError) and isinstance(error.__context__, ClientError | BotoCoreError):
        error = error.__context__  # boto3 wraps upload_file's ClientError in a text-only error
    if isinstance(error, RetriesExceededError) and error.last_exception is not None:
        error = error.last_exception  # s3transfer gave up re-reading a download stream
    if isinstance(error, ClientError):
        err = error.response.get("Error", {})
        code = str(err.get("Code") or "")
        meta = error.response.get("ResponseMetadata", {})
        status = int(meta.get("HTTPStatusCode") or 0)
        attempts = int(meta.get("RetryAttempts") or 0) + 1
        after = f" after {attempts} attempts" if attempts > 1 else ""
        if code == "NoSuchBucket":
            return StorageError(f"bucket {bucket} does not exist (S3 endpoint {endpoint})")
        if code in _CREDENTIAL_CODES:
            return StorageError(
                f"S3 credentials rejected by {endpoint} ({code}): check AWS_ACCESS_KEY_ID / "
                "AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN or the AWS profile"
            )
        if code in _ACCESS_CODES or status == 403:
            return StorageError(f"access denied to {target} ({code or 'HTTP 403'})")
        if status >= 500 or code in ("SlowDown", "Throttling", "RequestTimeout"):
            return StorageError(f"S3 is unavailable for {target}{after}: {code or 'error'} (HTTP {status})")
        message = err.get("Message") or ""
        return StorageError(f"S3 {error.operation_name} of {target} failed: {code} (HTTP {status}) {message}".strip())
    if isinstance(error, NoCredentialsError):
        return StorageError(NO_CREDENTIALS)
    if isinstance(error, PartialCredentialsError):
        return StorageError(
            f"incomplete AWS credentials from {error.kwargs.get('provider')}: {error.kwargs.get('cred_var')} is missing"
        )
    if isinstance(error, CredentialRetrievalError):
        return StorageError(f"cannot obtain AWS credentials from {error.kwargs.get('provider')}")
    if isinstance(error, ProfileNotFound):
        return StorageError(f"AWS profile {error.kwargs.get('profile')} not found")
    for cls, reason in _UNREACHABLE:
        if isinstance(error, cls):
            cause = error.kwargs.get("error") if isinstance(error, BotoCoreError) else None
            detail = f" ({cause})" if cause else ""
            return StorageError(f"cannot reach S3 endpoint {endpoint}: {reason}{detail}")
    return StorageError(f"S3 request for {target} failed: {error}")


def _open_s3(
    url: str,
    endpoint_url: str | None,
    region: str | None,
    profile: str | None,
    max_attempts: int | None,
    connect_timeout: float,
    read_timeout: float,
) -> S3Storage:
    parts = urlsplit(url)
    if "@" in parts.netloc or ":" in parts.netloc:
        # Do not echo the URL: it may hold a secret (which may contain '/', so the '@' can end
        # up in what urlsplit calls the path; the ':' of "key:secret" stays in the netloc).
        raise UsageError("S3 repository URLs must not contain credentials: use AWS_ACCESS_KEY_ID / AWS_PROFILE")
    bucket = parts.netloc
    if not bucket:
        raise UsageError(f"invalid repository URL {url}: no bucket name")
    if parts.query or parts.fragment:
        raise UsageError(f"invalid repository URL {url}: unexpected '?' or '#'")
    prefix = parts.path.strip("/")
    if prefix:
        try:
            check_key(prefix)
        except StorageError:
            raise UsageError(f"invalid repository URL {url}: bad prefix") from None

    endpoint = endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None
    display = _display_endpoint(endpoint)
    try:
        core = _botocore_session()
        if profile:
            core.set_config_variable("profile", profile)
        retries: dict[str, Any] = {
            "mode": "adaptive" if core.get_config_variable("retry_mode") == "adaptive" else "standard"
        }
        # botocore's Config "max_attempts" counts *retries* while AWS_MAX_ATTEMPTS counts total
        # attempts; "total_max_attempts" is the unambiguous spelling. Left unset, botocore takes
        # AWS_MAX_ATTEMPTS or the profile's max_attempts.
        if max_attempts is not None:
            retries["total_max_attempts"] = max(1, max_attempts)
        elif core.get_config_variable("max_attempts") is None:
            retries["total_max_attempts"] = DEFAULT_MAX_ATTEMPTS
        config = Config(
            retries=retries,  # type: ignore[arg-type]
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            tcp_keepalive=True,
            max_pool_connections=TRANSFER_CONCURRENCY + 2,
            # Self-hosted stores (MinIO, Ceph...) rarely have wildcard DNS for virtual-host
            # bucket names; AWS itself still gets botocore's default addressing.
            s3={"addressing_style": "path"} if endpoint else None,
            user_agent_extra=f"ybrewind/{__version__}",
        )
        session = boto3.Session(botocore_session=core, region_name=region)
        client = session.client("s3", endpoint_url=endpoint, config=config)
    except ProfileNotFound as e:
        raise StorageError(f"AWS profile {e.kwargs.get('profile')} not found") from None
    except ValueError as e:  # botocore's complaint about a malformed endpoint URL
        raise UsageError(f"invalid S3 endpoint URL {display}: {e}") from None
    except BotoCoreError as e:
        raise _s3_error(e, target=url, bucket=bucket, endpoint=display) from None
    return S3Storage(client, bucket, prefix)


_loader_lock = threading.Lock()
_loader: Any = None


def _botocore_session() -> botocore.session.Session:
    """A fresh botocore session (credentials and settings read anew) sharing one model loader.

    Loading botocore's service models is most of the ~0.5 s a client costs; they never change
    within a process, so every session reuses the first one's loader (and its cache).
    """
    global _loader
    core = botocore.session.get_session()
    with _loader_lock:
        if _loader is None:
            _loader = core.get_component("data_loader")
        else:
            core.register_component("data_loader", _loader)
    return core


class _S3Lock(RepositoryLock):
    def __init__(self, storage: S3Storage, name: str, key: str, record: dict[str, Any], stale_after: float) -> None:
        super().__init__(storage.url, name, record)
        self._storage = storage
        self._key = key
        self.stale_after = stale_after
        # Heartbeats more often than this are skipped so that refresh() can be called at every
        # segment without a PUT each time; a sixth of stale_after leaves ample margin.
        self.min_interval = stale_after / 6
        self._last_write = time.monotonic()

    def refresh(self, *, force: bool = False) -> None:
        if self.released:
            raise RepositoryLockedError(f"lock {self.name} on repository {self.url} was released")
        started = time.monotonic()
        if not force and started - self._last_write < self.min_interval:
            return
        current = self._storage._read_lock(self._key)
        if current is None or current[0].get("token") != self._record["token"]:
            raise self._lost(current[0] if current else None)
        self._record["heartbeat"] = _now_iso()
        # If-Match on the ETag just read: a takeover between our read and our write wins.
        if self._storage._put_lock(self._key, self._record, if_match=current[1]) is None:
            current = self._storage._read_lock(self._key)
            raise self._lost(current[0] if current else None)
        self._last_write = started

    def _lost(self, holder: dict[str, Any] | None) -> RepositoryLockedError:
        self.released = True
        by = f": it is now held by {_describe_holder(holder)}" if holder else ": the lock object was removed"
        return RepositoryLockedError(f"lost lock {self.name} on repository {self.url}{by}")

    def release(self) -> None:
        if self.released:
            return
        self.released = True
        try:
            current = self._storage._read_lock(self._key)
            if current is None:
                return
            if current[0].get("token") != self._record["token"]:
                log.warning(
                    "not releasing lock %s on %s: it was taken over by %s",
                    self.name,
                    self.url,
                    _describe_holder(current[0]),
                )
                return
            self._storage._delete_lock(self._key, current[1])
        except StorageError as e:
            log.warning(
                "could not release lock %s on %s (%s); others may take it over after %gs",
                self.name,
                self.url,
                e.message,
                self.stale_after,
            )


class S3Storage(Storage):
    """A repository under ``s3://bucket/prefix`` (AWS S3 or an S3-compatible store)."""

    LIST_PAGE_SIZE = 1000  # the S3 maximum; tests lower it to exercise pagination
    LOCK_RACE_ATTEMPTS = 3

    def __init__(
        self, client: Any, bucket: str, prefix: str = "", *, transfer_config: TransferConfig | None = None
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._root = f"{self.prefix}/" if self.prefix else ""
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self.endpoint = _display_endpoint(client.meta.endpoint_url)
        self.transfer_config = transfer_config or TransferConfig(
            multipart_threshold=MULTIPART_THRESHOLD,
            multipart_chunksize=MULTIPART_CHUNKSIZE,
            max_concurrency=TRANSFER_CONCURRENCY,
        )
        # Whether the store honors conditional writes (If-None-Match / If-Match); switched off
        # the first time it answers NotImplemented, see _put_lock.
        self.conditional_puts = True
        self.conditional_deletes = True

    # -- plumbing

    def _full(self, key: str) -> str:
        return self._root + check_key(key)

    def _target(self, key: str) -> str:
        return f"{self.url}/{key}" if key else self.url

    def _error(self, error: BaseException, key: str) -> StorageError:
        if isinstance(error, ClientError) and error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            if error.response["Error"]["Code"] == "404":
                # A HEAD (download_fileobj's first request) has no body, so a missing bucket
                # also comes back as a bare 404: ask a question that tells them apart.
                self._check_bucket()
            return ObjectNotFound(f"object {key} not found in repository {self.url}")
        return _s3_error(error, target=self._target(key), bucket=self.bucket, endpoint=self.endpoint)

    @contextmanager
    def _translated(self, key: str) -> Iterator[None]:
        try:
            yield
        except (BotoCoreError, ClientError, S3UploadFailedError, RetriesExceededError) as e:
            raise self._error(e, key) from None

    def _check_bucket(self) -> None:
        with self._translated(""):
            self.client.list_objects_v2(Bucket=self.bucket, Prefix=self._root, MaxKeys=1)

    def _get_object(self, key: str) -> tuple[bytes, dict[str, Any]]:
        # botocore retries a request until its response headers arrive; a reset or timeout
        # while reading the body afterwards reaches us unretried, hence this short loop.
        for attempt in range(1, _BODY_ATTEMPTS + 1):
            with self._translated(key):
                response = self.client.get_object(Bucket=self.bucket, Key=self._full(key))
            try:
                return response["Body"].read(), response
            except _BODY_ERRORS as e:
                if attempt == _BODY_ATTEMPTS:
                    raise self._error(e, key) from None
                time.sleep(0.5 * attempt)
        raise AssertionError("unreachable")

    # -- objects

    def put(self, key: str, data: bytes) -> None:
        full = self._full(key)
        with self._translated(key):
            self.client.put_object(Bucket=self.bucket, Key=full, Body=data)

    def put_file(self, key: str, path: Path) -> None:
        full = self._full(key)
        if not os.path.isfile(path):
            raise StorageError(f"cannot read {path}: not a file")
        try:
            with self._translated(key):
                # Multipart above the threshold; the object appears only when the upload
                # completes, and s3transfer aborts the upload if a part fails for good.
                self.client.upload_file(str(path), self.bucket, full, Config=self.transfer_config)
        except OSError as e:
            raise _read_error(Path(path), e) from None

    def get(self, key: str) -> bytes:
        return self._get_object(key)[0]

    def get_file(self, key: str, path: Path) -> None:
        full = self._full(key)

        # A seekable file object lets s3transfer fetch ranges in parallel for large objects,
        # and we own the file's creation (0600) and its atomic rename.
        with atomic_file(Path(path)) as f, self._translated(key):
            self.client.download_fileobj(self.bucket, full, f, Config=self.transfer_config)

    def exists(self, key: str) -> bool:
        full = self._full(key)
        # A listing rather than HEAD: HEAD answers a bare 403/404 for a missing bucket or a
        # missing permission, where ListObjectsV2 names the problem. The key itself sorts
        # first among the keys it prefixes.
        with self._translated(key):
            response = self.client.list_objects_v2(Bucket=self.bucket, Prefix=full, MaxKeys=1)
        contents = response.get("Contents") or []
        return bool(contents) and contents[0]["Key"] == full

    def list_sizes(self, prefix: str = "") -> dict[str, int]:
        _check_prefix(prefix)
        keys: dict[str, int] = {}
        paginator = self.client.get_paginator("list_objects_v2")
        with self._translated(prefix):
            for page in paginator.paginate(
                Bucket=self.bucket, Prefix=self._root + prefix, PaginationConfig={"PageSize": self.LIST_PAGE_SIZE}
            ):
                for item in page.get("Contents") or []:
                    key = item["Key"][len(self._root) :]
                    if key and not key.endswith("/"):  # skip "folder" marker objects
                        keys[key] = int(item.get("Size", 0))
        return keys

    def delete(self, key: str) -> None:
        full = self._full(key)
        with self._translated(key):
            self.client.delete_object(Bucket=self.bucket, Key=full)

    # -- lock

    def _read_lock(self, key: str) -> tuple[dict[str, Any], str, float] | None:
        """The lock record, its ETag and its heartbeat age in seconds, or None."""
        try:
            data, response = self._get_object(key)
        except ObjectNotFound:
            return None
        try:
            info = json.loads(data)
            if not isinstance(info, dict):
                raise ValueError
        except ValueError:
            info = {"owner": "an unknown owner (unreadable lock object)"}
        # Age by the server's clock alone (its Date header minus the object's LastModified), so
        # that a client whose clock is off cannot take over a live lock.
        now = datetime.now(UTC)
        date = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
        if date:
            with suppress(TypeError, ValueError):
                now = parsedate_to_datetime(date)
        age = max(0.0, (now - response["LastModified"]).total_seconds())
        return info, response["ETag"], age

    def _put_lock(
        self, key: str, record: dict[str, Any], *, if_none_match: bool = False, if_match: str | None = None
    ) -> str | None:
        """Write the lock object; the new ETag, or None if the precondition failed (lost race)."""
        conditions: dict[str, str] = {}
        if self.conditional_puts:
            if if_none_match:
                conditions["IfNoneMatch"] = "*"
            if if_match:
                conditions["IfMatch"] = if_match
        try:
            response = self.client.put_object(
                Bucket=self.bucket,
                Key=self._full(key),
                Body=json.dumps(record).encode(),
                ContentType="application/json",
                **conditions,
            )
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code")
            if code in _LOST_RACE_CODES or (if_match and code in ("NoSuchKey", "404")):
                return None  # someone else's write, or a delete, came first
            if conditions and _not_implemented(e):
                log.warning(
                    "%s does not support conditional writes; locking falls back to read-check-write, "
                    "which two processes starting within the same instant can both pass",
                    self.endpoint,
                )
                self.conditional_puts = False
                return self._put_lock(key, record, if_none_match=if_none_match, if_match=if_match)
            raise self._error(e, key) from None
        except BotoCoreError as e:
            raise self._error(e, key) from None
        return str(response["ETag"])

    def _delete_lock(self, key: str, etag: str) -> None:
        conditions = {"IfMatch": etag} if self.conditional_deletes else {}
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._full(key), **conditions)
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code")
            if code in _LOST_RACE_CODES:
                log.warning("not releasing lock %s on %s: it was taken over meanwhile", key, self.url)
                return
            if code in ("NoSuchKey", "404"):
                return
            if conditions and _not_implemented(e):
                # The caller has just checked that the object is ours; without If-Match a
                # takeover in the last few milliseconds could be deleted. Rare, and harmless
                # beyond letting a third process in.
                self.conditional_deletes = False
                self._delete_lock(key, etag)
                return
            raise self._error(e, key) from None
        except BotoCoreError as e:
            raise self._error(e, key) from None

    def lock(self, name: str, owner: str, stale_after: float = DEFAULT_STALE_AFTER) -> RepositoryLock:
        key = _lock_key(name)
        for _ in range(self.LOCK_RACE_ATTEMPTS):
            record = _new_record(owner)
            current = self._read_lock(key)
            taken_over: dict[str, Any] | None = None
            if current is None:
                # Conditional create: of two processes racing here, S3 lets exactly one win.
                etag = self._put_lock(key, record, if_none_match=True)
            else:
                info, current_etag, age = current
                if age <= stale_after:
                    raise RepositoryLockedError(_locked_message(self.url, info, age, stale_after))
                log.warning(
                    "taking over stale lock %s on %s from %s: no heartbeat for %.0fs (limit %gs)",
                    name,
                    self.url,
                    _describe_holder(info),
                    age,
                    stale_after,
                )
                # If-Match: of several processes taking over the same stale lock, one wins; and
                # a holder that wakes up and heartbeats first keeps its lock.
                etag = self._put_lock(key, record, if_match=current_etag)
                taken_over = info
            if etag is not None and not self.conditional_puts:
                # Without conditional writes, read back: the last writer wins, so a process that
                # finds someone else's record has lost (the race the warning describes remains).
                check = self._read_lock(key)
                etag = check[1] if check and check[0].get("token") == record["token"] else None
            if etag is not None:
                lock = _S3Lock(self, name, key, record, stale_after)
                lock.taken_over_from = taken_over
                return lock
            # Lost a race: the next round reads the winner's record and names it.
        raise RepositoryLockedError(f"repository {self.url}: lock {name} is being contended, try again")

    def lock_status(
        self, name: str, *, stale_after: float = DEFAULT_STALE_AFTER, include_stale: bool = False
    ) -> dict[str, Any] | None:
        current = self._read_lock(_lock_key(name))
        if current is None:
            return None
        info, _, age = current
        live = age <= stale_after
        return {**info, "heartbeat_age": age, "live": live} if live or include_stale else None


def _not_implemented(error: ClientError) -> bool:
    """Whether the store refused a request because it does not know a header we sent."""
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return status == 501 or error.response.get("Error", {}).get("Code") == "NotImplemented"
