"""Pieces the benchmark scripts share: logging, waiting, a pgbench database, the archiver process."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import psycopg

from ybrewind.archive.repo import Repository


def log(message: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def wait_until(what: str, check: Callable[[], object], timeout: float, interval: float = 0.05) -> float:
    """Poll ``check`` until true; returns the monotonic time it became true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return time.monotonic()
        time.sleep(interval)
    raise SystemExit(f"bench: timed out after {timeout:.0f}s waiting for {what}")


def pgbench_database(bindir: Path, env: dict[str, str], dbname: str, url: str, scale: int) -> psycopg.Connection:
    """``pgbench -i`` into ``dbname`` plus the marker table the benchmarks commit last; a connection to it."""
    log(f"pgbench -i -s {scale}")
    subprocess.run(
        [str(bindir / "pgbench"), "-i", "-q", "-s", str(scale), dbname],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    conn = psycopg.connect(url, autocommit=True)
    conn.execute("CREATE TABLE bench_marker (id int PRIMARY KEY, at timestamptz NOT NULL)")
    conn.execute("VACUUM ANALYZE")
    return conn


def start_archiver(
    ybrewind: str,
    source: str,
    repo_dir: Path,
    segment_age: float,
    env: dict[str, str],
    log_path: Path,
    extra: tuple[str, ...] = (),
) -> tuple[subprocess.Popen[bytes], Repository]:
    """``ybrewind archive start`` as a child process, returned once its first base backup is stored."""
    with open(log_path, "wb") as out:
        archiver = subprocess.Popen(
            [ybrewind, "archive", "start", "-q", source, str(repo_dir), "--segment-age", str(segment_age), *extra],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    repo = Repository.open(str(repo_dir))

    def started() -> bool:
        if archiver.poll() is not None:
            raise SystemExit(f"bench: the archiver exited with {archiver.returncode}: {log_path.read_text()[-2000:]}")
        return bool((repo.status() or {}).get("running"))

    wait_until("the archiver's first base backup", started, 600)
    return archiver, repo


def stop_archiver(archiver: subprocess.Popen[bytes] | None) -> None:
    if archiver is not None and archiver.poll() is None:
        archiver.send_signal(signal.SIGTERM)
        try:
            archiver.wait(60)
        except subprocess.TimeoutExpired:
            archiver.kill()
