"""Archive repository storage: one contract for a local directory and S3, plus each backend's edges.

S3 is moto's real HTTP server (one per module, any free port, so pytest-xdist workers never
collide). Transient failures are injected by a small HTTP proxy in front of it, because moto has
no switch to make S3 fail on demand.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError, ReadTimeoutError

from tests.support.faults import FaultProxy
from ybrewind.archive import storage as st
from ybrewind.archive.storage import ObjectNotFound, S3Storage, Storage, lock_status, open_storage
from ybrewind.errors import RepositoryLockedError, StorageError, UsageError

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"  # must never show up in a message
MiB = 1 << 20


# --------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fake credentials; nothing from the developer's ~/.aws, the environment or EC2 metadata."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_MAX_ATTEMPTS",
        "AWS_RETRY_MODE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def admin(endpoint: str) -> Any:
    """A plain boto3 client, to set the scene and to check behind the storage layer's back."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def bucket(moto_url: str) -> str:
    name = f"ybr-{uuid.uuid4().hex[:16]}"
    admin(moto_url).create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3(moto_url: str, bucket: str) -> S3Storage:
    storage = open_storage(f"s3://{bucket}/repo", endpoint_url=moto_url)
    assert isinstance(storage, S3Storage)
    return storage


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "local":
        return open_storage(str(tmp_path / "repo"))
    return request.getfixturevalue("s3")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def one_line(error: BaseException) -> str:
    message = str(error)
    assert "\n" not in message and SECRET not in message and "Traceback" not in message
    return message


# --------------------------------------------------------------------------------------------
# The contract, on both backends


def test_put_get_exists_overwrite_delete(storage: Storage) -> None:
    assert storage.list("") == []  # nothing created yet (a local root appears on first write)
    storage.put("segments/a.seg.zst", b"first")
    assert storage.get("segments/a.seg.zst") == b"first"
    assert storage.exists("segments/a.seg.zst")
    assert not storage.exists("segments")  # a prefix is not an object
    assert not storage.exists("segments/a.seg")  # nor is a prefix of a key
    storage.put("segments/a.seg.zst", b"second")
    assert storage.get("segments/a.seg.zst") == b"second"
    storage.put("empty", b"")
    assert storage.get("empty") == b""
    storage.delete("segments/a.seg.zst")
    storage.delete("segments/a.seg.zst")  # missing is fine
    storage.delete("never/was")
    assert not storage.exists("segments/a.seg.zst")
    assert storage.list("") == ["empty"]


def test_list_is_recursive_sorted_relative_and_prefix_exact(storage: Storage) -> None:
    keys = [
        "segments/000000000100A0B8-2.seg.zst",
        "segments/000000000100A0B8-1.seg.zst",
        "segments/sub/deeper/x",
        "segmentsX/y",
        "base/b1/base.json",
        "repository.json",
    ]
    for key in keys:
        storage.put(key, key.encode())
    assert storage.list("") == sorted(keys)
    assert storage.list("segments/") == sorted(k for k in keys if k.startswith("segments/"))
    assert storage.list("segments") == sorted(k for k in keys if k.startswith("segments"))
    assert storage.list("segments/0000") == [
        "segments/000000000100A0B8-1.seg.zst",
        "segments/000000000100A0B8-2.seg.zst",
    ]
    assert storage.list("segments/sub") == ["segments/sub/deeper/x"]
    assert storage.list("base/b1/base.json") == ["base/b1/base.json"]
    assert storage.list("nothing/") == []
    assert storage.list("nothing") == []


def test_missing_object_error_names_the_key(storage: Storage, tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    for fetch in (
        lambda: storage.get("segments/missing.seg.zst"),
        lambda: storage.get_file("segments/missing.seg.zst", target),
    ):
        with pytest.raises(ObjectNotFound) as caught:
            fetch()
        assert one_line(caught.value) == f"object segments/missing.seg.zst not found in repository {storage.url}"
        assert isinstance(caught.value, StorageError)
    assert not target.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.bin")] == []  # no temp left behind


@pytest.mark.parametrize(
    "key",
    ["", "/abs", "a//b", "a/", "..", "../x", "a/../b", "./a", "a/./b", ".hidden", "a/.b.tmp", "line\nbreak", "nul\x00"],
)
def test_bad_keys_are_rejected(storage: Storage, key: str, tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.write_bytes(b"x")
    operations = [
        lambda: storage.put(key, b"x"),
        lambda: storage.put_file(key, source),
        lambda: storage.get(key),
        lambda: storage.get_file(key, tmp_path / "dst"),
        lambda: storage.exists(key),
        lambda: storage.delete(key),
    ]
    for operation in operations:
        with pytest.raises(StorageError, match="invalid object key"):
            operation()
    assert storage.list("") == []


@pytest.mark.parametrize("prefix", ["/", "/a", "../", "a/../", "a//"])
def test_bad_list_prefixes_are_rejected(storage: Storage, prefix: str) -> None:
    with pytest.raises(StorageError, match="invalid"):
        storage.list(prefix)


def test_put_file_and_get_file_of_a_large_object(storage: Storage, tmp_path: Path) -> None:
    if isinstance(storage, S3Storage):
        # Small parts so that 20 MB is a 4-part multipart upload and a ranged download.
        storage.transfer_config = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    source = tmp_path / "big.bin"
    data = os.urandom(20 * MiB)
    source.write_bytes(data)
    storage.put_file("base/b1/big.bin", source)
    target = tmp_path / "copy.bin"
    target.write_bytes(b"old contents are replaced")
    storage.get_file("base/b1/big.bin", target)
    assert hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(data).digest()
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert storage.list("base/") == ["base/b1/big.bin"]
    if isinstance(storage, S3Storage):
        etag = admin(storage.client.meta.endpoint_url).head_object(Bucket=storage.bucket, Key="repo/base/b1/big.bin")[
            "ETag"
        ]
        assert etag.strip('"').endswith("-4")  # the ETag of a 4-part multipart upload
    with pytest.raises(StorageError, match=r"cannot read .*nope"):
        storage.put_file("x", tmp_path / "nope")


def test_lock_is_exclusive_and_the_refusal_names_the_holder(storage: Storage) -> None:
    with storage.lock("archiver", "archiver-a") as held:
        assert held.holder()["owner"] == "archiver-a"
        with pytest.raises(RepositoryLockedError) as caught:
            storage.lock("archiver", "archiver-b")
        expected = (
            f"repository {storage.url} is locked by archiver-a (pid {os.getpid()} on host {socket.gethostname()} since "
        )
        assert one_line(caught.value).startswith(expected)
        status = lock_status(storage, "archiver")
        assert status is not None and status["owner"] == "archiver-a" and status["live"] is True
        held.refresh()
        held.refresh(force=True)
        with storage.lock("other", "archiver-b"):  # locks are per name
            pass
    assert lock_status(storage, "archiver") is None
    with storage.lock("archiver", "archiver-b") as held:
        assert held.holder()["owner"] == "archiver-b"


# --------------------------------------------------------------------------------------------
# Local directory


def test_local_modes_and_no_temp_files(tmp_path: Path) -> None:
    root = tmp_path / "missing" / "repo"
    storage = open_storage(f"file://{root}")
    assert storage.url == str(root)
    storage.put("segments/sub/a", b"a")
    for directory in (tmp_path / "missing", root, root / "segments", root / "segments" / "sub"):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory
    assert stat.S_IMODE((root / "segments" / "sub" / "a").stat().st_mode) == 0o600
    assert [p.name for p in (root / "segments" / "sub").iterdir()] == ["a"]
    (root / "segments" / ".a.123.tmp").write_bytes(b"a write in progress")
    assert storage.list("") == ["segments/sub/a"]


def test_local_path_points_into_the_directory(tmp_path: Path) -> None:
    storage = open_storage(str(tmp_path / "repo"))
    assert isinstance(storage, st.LocalStorage)
    storage.put("base/b1/x", b"x")
    assert (storage.local_path("base/b1/") / "x").read_bytes() == b"x"


def test_local_write_failure_is_one_line_naming_the_path(tmp_path: Path) -> None:
    # Root ignores permissions, so force the failure with a file where a directory should be.
    blocker = tmp_path / "blocker"
    blocker.write_bytes(b"")
    storage = open_storage(str(blocker / "repo"))
    with pytest.raises(StorageError) as caught:
        storage.put("segments/a", b"x")
    assert one_line(caught.value) == f"cannot create directory {blocker}: a file is in the way"
    with pytest.raises(StorageError, match="blocker"):
        storage.lock("archiver", "me")
    # A key whose name is taken by a directory: the OSError is mapped by files.storage_error.
    storage = open_storage(str(tmp_path / "repo"))
    storage.put("segments/a", b"x")
    with pytest.raises(StorageError) as caught:
        storage.put("segments", b"x")
    assert one_line(caught.value) == f"cannot write {tmp_path / 'repo' / 'segments'}: Is a directory"
    assert storage.list("") == ["segments/a"]  # and the temp file is gone
    assert [p.name for p in (tmp_path / "repo").iterdir()] == ["segments"]


def test_local_read_only_directory(tmp_path: Path) -> None:
    probe = tmp_path / "probe"
    probe.mkdir(mode=0o500)
    try:
        (probe / "x").write_bytes(b"")
        pytest.skip("directory permissions are not enforced for this user (root)")
    except PermissionError:
        pass
    root = tmp_path / "repo"
    storage = open_storage(str(root))
    storage.put("a", b"a")
    root.chmod(0o500)
    try:
        with pytest.raises(StorageError) as caught:
            storage.put("b", b"b")
        assert one_line(caught.value) == f"permission denied writing {root / 'b'}"
        with pytest.raises(StorageError, match=r"permission denied writing .*archiver\.lock"):
            storage.lock("archiver", "me")
    finally:
        root.chmod(0o700)


def test_local_lock_is_released_when_its_holder_is_killed(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    code = (
        "import sys, time\n"
        "from ybrewind.archive.storage import open_storage\n"
        "lock = open_storage(sys.argv[1]).lock('archiver', 'doomed')\n"
        "print('locked', flush=True)\n"
        "time.sleep(60)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code, str(root)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "locked"
        storage = open_storage(str(root))
        with pytest.raises(RepositoryLockedError, match=rf"locked by doomed \(pid {child.pid} on host "):
            storage.lock("archiver", "me")
        status = lock_status(storage, "archiver")
        assert status is not None and status["pid"] == child.pid
        child.kill()  # SIGKILL: no cleanup code runs, only the kernel drops the flock
        child.wait(10)
        assert lock_status(storage, "archiver") is None
        with storage.lock("archiver", "me") as held:
            assert held.holder()["owner"] == "me"
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()


# --------------------------------------------------------------------------------------------
# S3


def test_s3_keys_are_relative_to_the_prefix(moto_url: str, bucket: str, s3: S3Storage) -> None:
    assert s3.url == f"s3://{bucket}/repo"
    s3.put("segments/a", b"a")
    admin(moto_url).put_object(Bucket=bucket, Key="repo2/segments/b", Body=b"outside the repository")
    admin(moto_url).put_object(Bucket=bucket, Key="repo/folder/", Body=b"")  # a console "folder" marker
    assert s3.list("") == ["segments/a"]
    whole_bucket = open_storage(f"s3://{bucket}", endpoint_url=moto_url)
    assert whole_bucket.url == f"s3://{bucket}"
    assert whole_bucket.list("") == ["repo/segments/a", "repo2/segments/b"]
    assert whole_bucket.get("repo/segments/a") == b"a"


def test_s3_list_paginates(s3: S3Storage, monkeypatch: pytest.MonkeyPatch) -> None:
    # 1000 keys per page is S3's maximum and moto's too; creating 1001 objects through moto
    # takes ~10 s, so shrink the page instead and count the requests.
    monkeypatch.setattr(S3Storage, "LIST_PAGE_SIZE", 4)
    keys = [f"segments/{i:04d}" for i in range(10)]
    for key in keys:
        s3.put(key, b"")
    requests: list[str] = []
    s3.client.meta.events.register("before-call.s3.ListObjectsV2", lambda **kw: requests.append("list"))
    assert s3.list("segments/") == keys
    assert len(requests) == 3


@pytest.mark.parametrize("operation", ["put", "put_file", "get", "get_file", "exists", "list", "delete", "lock"])
def test_s3_missing_bucket_is_one_line(moto_url: str, operation: str, tmp_path: Path) -> None:
    storage = open_storage("s3://no-such-bucket-here/repo", endpoint_url=moto_url)
    source = tmp_path / "src"
    source.write_bytes(b"x")
    calls = {
        "put": lambda: storage.put("k", b"x"),
        "put_file": lambda: storage.put_file("k", source),
        "get": lambda: storage.get("k"),
        "get_file": lambda: storage.get_file("k", tmp_path / "dst"),
        "exists": lambda: storage.exists("k"),
        "list": lambda: storage.list(""),
        "delete": lambda: storage.delete("k"),
        "lock": lambda: storage.lock("archiver", "me"),
    }
    with pytest.raises(StorageError) as caught:
        calls[operation]()
    assert one_line(caught.value) == f"bucket no-such-bucket-here does not exist (S3 endpoint {moto_url})"
    assert not isinstance(caught.value, ObjectNotFound)


def test_s3_unreachable_endpoint_fails_quickly_and_clearly() -> None:
    port = closed_port()
    storage = open_storage(
        "s3://bucket/repo", endpoint_url=f"http://127.0.0.1:{port}", max_attempts=2, connect_timeout=1
    )
    started = time.monotonic()
    with pytest.raises(StorageError) as caught:
        storage.put("k", b"x")
    assert time.monotonic() - started < 10
    assert one_line(caught.value).startswith(f"cannot reach S3 endpoint http://127.0.0.1:{port}: connection failed")


def test_s3_without_credentials(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    storage = open_storage("s3://bucket/repo", endpoint_url=moto_url)
    with pytest.raises(StorageError) as caught:
        storage.get("k")
    assert one_line(caught.value) == st.NO_CREDENTIALS


def test_s3_unknown_profile(moto_url: str) -> None:
    with pytest.raises(StorageError, match="AWS profile nosuch not found"):
        open_storage("s3://bucket/repo", endpoint_url=moto_url, profile="nosuch")


def test_s3_endpoint_from_the_environment(moto_url: str, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    storage = open_storage(f"s3://{bucket}/p")
    storage.put("k", b"v")
    assert admin(moto_url).get_object(Bucket=bucket, Key="p/k")["Body"].read() == b"v"


def client_error(code: str, status: int, retries: int = 0, operation: str = "PutObject") -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": f"message for {code}"},
        "ResponseMetadata": {"HTTPStatusCode": status, "RetryAttempts": retries},
    }
    return ClientError(response, operation)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (client_error("NoSuchBucket", 404), "bucket b does not exist (S3 endpoint http://s3.test)"),
        (client_error("AccessDenied", 403), "access denied to s3://b/repo/k (AccessDenied)"),
        (client_error("403", 403, operation="HeadObject"), "access denied to s3://b/repo/k (403)"),
        (client_error("InvalidAccessKeyId", 403), "S3 credentials rejected by http://s3.test (InvalidAccessKeyId)"),
        (
            client_error("SignatureDoesNotMatch", 403),
            "S3 credentials rejected by http://s3.test (SignatureDoesNotMatch)",
        ),
        (client_error("SlowDown", 503, retries=9), "S3 is unavailable for s3://b/repo/k after 10 attempts: SlowDown"),
        (client_error("InvalidRequest", 400), "S3 PutObject of s3://b/repo/k failed: InvalidRequest (HTTP 400)"),
        (NoCredentialsError(), "no AWS credentials found: set AWS_ACCESS_KEY_ID"),
        (
            EndpointConnectionError(endpoint_url="http://s3.test/b"),
            "cannot reach S3 endpoint http://s3.test: connection failed",
        ),
        (ReadTimeoutError(endpoint_url="http://s3.test/b"), "cannot reach S3 endpoint http://s3.test: read timed out"),
    ],
)
def test_s3_error_messages(error: BaseException, expected: str) -> None:
    message = one_line(st._s3_error(error, target="s3://b/repo/k", bucket="b", endpoint="http://s3.test"))
    assert message.startswith(expected)


def test_s3_upload_failure_is_unwrapped() -> None:
    # boto3's upload_file re-raises a ClientError as a text-only S3UploadFailedError.
    try:
        try:
            raise client_error("AccessDenied", 403)
        except ClientError as e:
            raise S3UploadFailedError(f"Failed to upload x to b/k: {e}")  # noqa: B904 - as boto3 does
    except S3UploadFailedError as wrapped:
        message = str(st._s3_error(wrapped, target="s3://b/k", bucket="b", endpoint="e"))
    assert message == "access denied to s3://b/k (AccessDenied)"


def test_endpoint_credentials_are_not_displayed() -> None:
    assert st._display_endpoint(f"https://user:{SECRET}@minio.local:9000/") == "https://minio.local:9000/"


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("s3://", "no bucket"),
        (f"s3://AKID:{SECRET}@bucket/repo", "must not contain credentials"),
        ("s3://bucket/a/../b", "bad prefix"),
        ("ftp://host/x", "unsupported repository URL scheme ftp://"),
        ("file://remote/x", "remote host"),
        ("", "empty repository path"),
    ],
)
def test_bad_repository_urls(url: str, match: str) -> None:
    with pytest.raises(UsageError, match=match) as caught:
        open_storage(url)
    one_line(caught.value)


def test_moto_honors_conditional_puts(moto_url: str, bucket: str) -> None:
    """The lock relies on If-None-Match / If-Match; check that the S3 under test enforces them."""
    client = admin(moto_url)
    etag = client.put_object(Bucket=bucket, Key="k", Body=b"1", IfNoneMatch="*")["ETag"]
    for conditions in ({"IfNoneMatch": "*"}, {"IfMatch": '"0123"'}):
        with pytest.raises(ClientError) as caught:
            client.put_object(Bucket=bucket, Key="k", Body=b"2", **conditions)
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    with pytest.raises(ClientError, match="PreconditionFailed"):
        client.delete_object(Bucket=bucket, Key="k", IfMatch='"0123"')
    client.put_object(Bucket=bucket, Key="k", Body=b"3", IfMatch=etag)


def test_s3_stale_lock_is_taken_over_and_the_old_holder_cannot_delete_it(
    s3: S3Storage, caplog: pytest.LogCaptureFixture
) -> None:
    old = s3.lock("archiver", "old-archiver")
    with pytest.raises(RepositoryLockedError, match=r"locked by old-archiver .*last heartbeat 0s ago"):
        s3.lock("archiver", "new-archiver", stale_after=60)
    time.sleep(1.1)  # S3 times have 1 s resolution: the heartbeat is now at least 1 s old
    with caplog.at_level(logging.WARNING, logger="ybrewind.archive.storage"):
        new = s3.lock("archiver", "new-archiver", stale_after=0.5)
        assert "taking over stale lock archiver" in caplog.text
        assert new.taken_over_from is not None and new.taken_over_from["owner"] == "old-archiver"
        old.release()  # must not delete the new holder's lock
        assert "not releasing lock archiver" in caplog.text
    status = lock_status(s3, "archiver")
    assert status is not None and status["owner"] == "new-archiver"
    assert s3.conditional_puts  # moto took the If-None-Match / If-Match path
    new.release()
    assert lock_status(s3, "archiver") is None


def test_s3_refresh_heartbeats_and_detects_a_lost_lock(moto_url: str, s3: S3Storage) -> None:
    puts: list[str] = []
    s3.client.meta.events.register("before-call.s3.PutObject", lambda **kw: puts.append("put"))
    lock = s3.lock("archiver", "me")
    puts.clear()
    lock.refresh()  # within min_interval of the last write: no request
    assert puts == []
    lock.refresh(force=True)
    assert puts == ["put"]
    # Someone else's record replaces ours (as a takeover would): the next heartbeat notices.
    admin(moto_url).put_object(
        Bucket=s3.bucket, Key="repo/archiver.lock", Body=b'{"owner": "intruder", "pid": 7, "host": "h", "since": "t"}'
    )
    with pytest.raises(RepositoryLockedError, match=r"lost lock archiver on repository .* held by intruder \(pid 7"):
        lock.refresh(force=True)
    lock.release()  # already lost: leaves the intruder's lock alone
    status = lock_status(s3, "archiver")
    assert status is not None and status["owner"] == "intruder"
    # A stale lock is not a live holder, unless asked for.
    assert lock_status(s3, "archiver", stale_after=-1) is None
    stale = lock_status(s3, "archiver", stale_after=-1, include_stale=True)
    assert stale is not None and stale["live"] is False


# --------------------------------------------------------------------------------------------
# Misbehaving S3: a proxy in front of moto


@pytest.fixture
def proxy(moto_url: str) -> Iterator[FaultProxy]:
    p = FaultProxy(moto_url)
    yield p
    p.close()


def through(proxy: FaultProxy, bucket: str, max_attempts: int = 4) -> S3Storage:
    storage = open_storage(f"s3://{bucket}/repo", endpoint_url=proxy.url, max_attempts=max_attempts, read_timeout=5)
    assert isinstance(storage, S3Storage)
    return storage


@pytest.mark.parametrize("faults", [["503", "503"], ["500"], ["reset"]], ids=["503x2", "500", "reset"])
def test_s3_transient_failures_are_retried_by_botocore(
    moto_url: str, bucket: str, proxy: FaultProxy, faults: list[str]
) -> None:
    proxy.faults = list(faults)
    through(proxy, bucket).put("segments/a", b"payload")
    assert proxy.served == [f"PUT {f}" for f in faults] + ["PUT ok"]
    assert admin(moto_url).get_object(Bucket=bucket, Key="repo/segments/a")["Body"].read() == b"payload"


def test_s3_gives_up_after_max_attempts_with_one_line(bucket: str, proxy: FaultProxy) -> None:
    proxy.always = "500"
    with pytest.raises(StorageError) as caught:
        through(proxy, bucket, max_attempts=2).put("segments/a", b"payload")
    assert one_line(caught.value) == (
        f"S3 is unavailable for s3://{bucket}/repo/segments/a after 2 attempts: InternalError (HTTP 500)"
    )
    assert proxy.served == ["PUT 500", "PUT 500"]


def test_s3_get_retries_a_body_cut_short(s3: S3Storage, bucket: str, proxy: FaultProxy) -> None:
    # botocore's retries end once response headers arrive; this is the case get() covers itself.
    data = os.urandom(256 * 1024)
    s3.put("segments/a", data)
    proxy.faults = ["truncate"]
    assert through(proxy, bucket).get("segments/a") == data
    assert proxy.served == ["GET truncate", "GET ok"]


def test_s3_lock_on_a_store_without_conditional_writes(bucket: str, proxy: FaultProxy) -> None:
    proxy.reject_conditional = True
    storage = through(proxy, bucket)
    with storage.lock("archiver", "a") as held:
        assert not storage.conditional_puts  # fell back to read-check-write
        with pytest.raises(RepositoryLockedError, match="locked by a "):
            storage.lock("archiver", "b")
        held.refresh(force=True)
    assert not storage.conditional_deletes
    assert lock_status(storage, "archiver") is None
    assert "PUT 501" in proxy.served and "DELETE 501" in proxy.served


def test_s3_retry_settings(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def retries(**kwargs: Any) -> dict[str, Any]:
        storage = open_storage("s3://bucket/repo", endpoint_url=moto_url, **kwargs)
        assert isinstance(storage, S3Storage)
        return dict(storage.client.meta.config.retries)

    assert retries() == {"mode": "standard", "total_max_attempts": st.DEFAULT_MAX_ATTEMPTS}
    assert retries(max_attempts=3)["total_max_attempts"] == 3
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "5")  # the standard AWS setting wins over our default
    assert retries()["total_max_attempts"] == 5
