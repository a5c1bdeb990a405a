"""An embedded throwaway PostgreSQL cluster for the demo, the tests and users' experiments.

It uses the server binaries already installed on the machine (``pg_config --bindir`` or
``/usr/lib/postgresql/*/bin``), listens on a free 127.0.0.1 port with ``wal_level=logical`` and
``track_commit_timestamp=on``, and is started through ``runuser -u postgres`` when we run as root,
because PostgreSQL refuses to run as root. Durability is switched off (``fsync=off``): a sandbox
is for throwaway data only.

Authentication: the superuser ``postgres`` is trusted on loopback; every other role must give a
password (scram-sha-256), so wrong-password handling can be exercised for real.

``start`` and ``stop`` hold an exclusive lock (``.<name>.lock`` beside the directory) so processes
racing on one directory, such as pytest-xdist workers, end up sharing one server instead of
colliding; ``stop`` stops it for every user of the directory.
"""

from __future__ import annotations

import fcntl
import glob
import json
import os
import shutil
import socket
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from ybrewind.errors import UsageError, YbrewindError

SUPERUSER = "postgres"
STATE_FILE = "sandbox.json"


class SandboxError(YbrewindError):
    """The sandbox cluster could not be created, started or stopped."""


def default_dir() -> Path:
    return Path(tempfile.gettempdir()) / f"ybrewind-sandbox-{os.getuid()}"


def find_bindir() -> Path:
    """Locate the PostgreSQL server binaries, preferring ``pg_config --bindir``."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=True)
            candidates.append(Path(out.stdout.strip()))
        except (OSError, subprocess.CalledProcessError):
            pass

    def version_key(path: str) -> float:
        try:
            return float(Path(path).parent.name)
        except ValueError:
            return 0.0

    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version_key, reverse=True)]
    for bindir in candidates:
        if (bindir / "initdb").exists() and (bindir / "pg_ctl").exists():
            return bindir
    raise SandboxError(
        "no PostgreSQL server binaries found (looked at pg_config --bindir and /usr/lib/postgresql/*/bin); "
        "install the postgresql server package"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Sandbox:
    """A running (or recorded) sandbox cluster."""

    directory: str
    port: int
    bindir: str

    @property
    def datadir(self) -> Path:
        return Path(self.directory) / "data"

    def url(self, dbname: str = "postgres", user: str = SUPERUSER) -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{dbname}"

    def binary(self, name: str) -> str:
        return str(Path(self.bindir) / name)


def _as_server_user(argv: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *argv]
    return argv


def _run(argv: list[str], what: str) -> None:
    proc = subprocess.run(_as_server_user(argv), capture_output=True, text=True)
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise SandboxError(f"{what} failed: {detail[-1] if detail else f'exit code {proc.returncode}'}")


def start(directory: Path | None = None, port: int | None = None, settings: dict[str, str] | None = None) -> Sandbox:
    """Create and start a cluster in ``directory`` (reusing it if it is already running).

    ``settings`` override the postgresql.conf defaults below (tests use it for wal_level=replica).
    """
    directory = Path(directory or default_dir()).resolve()
    with _locked(directory):
        existing = status(directory)
        if existing is not None:
            return existing
        try:
            return _create(directory, port, settings)
        except BaseException:
            if not (directory / STATE_FILE).exists():  # no sandbox was created: leave nothing behind
                _lock_path(directory).unlink(missing_ok=True)
            raise


def _lock_path(directory: Path) -> Path:
    return directory.parent / f".{directory.name}.lock"


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Hold the directory's lock file exclusively (created on demand, removed by ``stop``)."""
    path = _lock_path(directory)
    while True:
        try:
            directory.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except PermissionError:
            raise SandboxError(f"cannot create files in {directory.parent} (permission denied)") from None
        fcntl.flock(fd, fcntl.LOCK_EX)
        # ``stop`` unlinks the file while holding it: a waiter that was queued on the old file
        # must lock the new one, or two processes would each hold "the" lock.
        try:
            current = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            current = False
        if current:
            break
        os.close(fd)
    try:
        yield
    finally:
        os.close(fd)


def _untraversable(directory: Path) -> Path | None:
    """The first directory on the way to ``directory`` the postgres user cannot enter, if any."""
    if subprocess.run(_as_server_user(["test", "-x", str(directory)])).returncode == 0:
        return None
    for ancestor in [*reversed(directory.parents), directory]:
        if subprocess.run(_as_server_user(["test", "-x", str(ancestor)])).returncode:
            return ancestor
    return directory


def _describe(path: Path) -> str:
    st = path.stat()
    try:
        import pwd

        owner = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        owner = str(st.st_uid)
    return f"mode {stat.S_IMODE(st.st_mode):04o}, owner {owner}"


def _create(directory: Path, port: int | None, settings: dict[str, str] | None) -> Sandbox:
    if directory.exists():
        if any(directory.iterdir()) and not (directory / STATE_FILE).exists():
            raise SandboxError(f"{directory} exists and is not a ybrewind sandbox; give an empty or new directory")
        shutil.rmtree(directory)  # a stale, stopped sandbox (or an empty directory): throwaway by definition
    bindir = find_bindir()
    if os.geteuid() == 0:
        blocked = _untraversable(directory.parent)
        if blocked is not None:
            raise SandboxError(
                f"the server runs as the postgres user, which cannot traverse {blocked} ({_describe(blocked)}); "
                "put the sandbox under a directory every user can enter (e.g. a mode 0755 one under /tmp) "
                "or chmod o+x it"
            )
    directory.mkdir(parents=True, mode=0o700)
    if os.geteuid() == 0:
        shutil.chown(directory, user="postgres", group="postgres")
    sandbox = Sandbox(str(directory), port or free_port(), str(bindir))
    hba = directory / "pg_hba.conf"
    hba.write_text(
        "local all all trust\n"
        f"host all {SUPERUSER} 127.0.0.1/32 trust\n"
        "host all all 127.0.0.1/32 scram-sha-256\n"
        "host replication all 127.0.0.1/32 scram-sha-256\n"
        f"host replication {SUPERUSER} 127.0.0.1/32 trust\n"
    )
    hba.chmod(0o644)
    # Recorded before initdb so that a half-created sandbox is still recognised (and removable) as one.
    (directory / STATE_FILE).write_text(json.dumps(asdict(sandbox)))
    _run(
        [
            sandbox.binary("initdb"),
            "-D",
            str(sandbox.datadir),
            "-U",
            SUPERUSER,
            "-A",
            "trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        ],
        "initdb",
    )
    config = {
        "listen_addresses": "'127.0.0.1'",
        "port": str(sandbox.port),
        "unix_socket_directories": f"'{directory}'",
        "hba_file": f"'{hba}'",
        "wal_level": "logical",
        "max_replication_slots": "20",
        "max_wal_senders": "20",
        "track_commit_timestamp": "on",
        "max_connections": "200",
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
        "shared_buffers": "256MB",
        "max_wal_size": "4GB",
        "log_min_messages": "warning",
    }
    config.update(settings or {})
    conf = sandbox.datadir / "postgresql.conf"
    with open(conf, "a") as f:
        f.write("\n# ybrewind sandbox\n")
        f.writelines(f"{k} = {v}\n" for k, v in config.items())
    _run(
        [
            sandbox.binary("pg_ctl"),
            "-D",
            str(sandbox.datadir),
            "-l",
            str(directory / "server.log"),
            "-w",
            "-t",
            "60",
            "start",
        ],
        "starting the sandbox server",
    )
    return sandbox


def status(directory: Path | None = None) -> Sandbox | None:
    """The sandbox in ``directory`` if its server is running, else None."""
    directory = Path(directory or default_dir()).resolve()
    state = directory / STATE_FILE
    if not state.exists():
        return None
    sandbox = Sandbox(**json.loads(state.read_text()))
    if not (sandbox.datadir / "postmaster.pid").exists():
        return None
    proc = subprocess.run(
        _as_server_user([sandbox.binary("pg_ctl"), "-D", str(sandbox.datadir), "status"]), capture_output=True
    )
    return sandbox if proc.returncode == 0 else None


def stop(directory: Path | None = None) -> bool:
    """Stop the sandbox server and delete its files. Returns False if nothing was running."""
    directory = Path(directory or default_dir()).resolve()
    if not directory.exists() and not _lock_path(directory).exists():
        return False
    with _locked(directory):
        sandbox = status(directory)
        if sandbox is not None:
            _run([sandbox.binary("pg_ctl"), "-D", str(sandbox.datadir), "-m", "fast", "-w", "stop"], "stopping")
        if directory.exists():
            if not (directory / STATE_FILE).exists():
                raise UsageError(f"{directory} is not a ybrewind sandbox; refusing to delete it")
            shutil.rmtree(directory, ignore_errors=True)
        _lock_path(directory).unlink(missing_ok=True)
    return sandbox is not None
