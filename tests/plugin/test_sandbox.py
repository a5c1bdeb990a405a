"""The sandbox under pytest: a root-only 0700 directory named in the error, concurrent starts."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from ybrewind import sandbox

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="the postgres user only matters when we run as root")


@as_root
def test_unreachable_directory_names_the_blocking_ancestor_and_its_mode() -> None:
    base = Path(tempfile.mkdtemp(prefix="ybrewind-mode-"))  # 0700, owned by root: like pytest's tmp_path
    try:
        inner = base / "a" / "b"
        inner.mkdir(parents=True, mode=0o755)
        with pytest.raises(sandbox.SandboxError) as info:
            sandbox.start(inner / "sb")
        message = str(info.value)
        assert f"cannot traverse {base} " in message
        assert "mode 0700" in message and "owner root" in message
        assert not (inner / "sb").exists()
    finally:
        subprocess.run(["rm", "-rf", str(base)], check=True)


def test_existing_directory_that_is_not_a_sandbox_is_refused() -> None:
    target = Path(tempfile.mkdtemp(prefix="ybrewind-notsb-"))
    try:
        (target / "precious.txt").write_text("keep me")
        with pytest.raises(sandbox.SandboxError, match="not a ybrewind sandbox"):
            sandbox.start(target)
        assert (target / "precious.txt").read_text() == "keep me"
        assert not (target.parent / f".{target.name}.lock").exists()
    finally:
        subprocess.run(["rm", "-rf", str(target)], check=True)


STARTER = """
import sys, time
from pathlib import Path
from ybrewind import sandbox
go = float(sys.argv[2])
time.sleep(max(0.0, go - time.time()))
print(sandbox.start(Path(sys.argv[1])).port)
"""


def test_concurrent_starts_on_one_directory_share_one_server() -> None:
    parent = Path(tempfile.mkdtemp(prefix="ybrewind-race-"))
    parent.chmod(0o755)
    directory = parent / "sb"
    try:
        import time

        go = str(time.time() + 1.0)  # both processes leave their sleep at the same instant
        procs = [
            subprocess.Popen([sys.executable, "-c", STARTER, str(directory), go], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
            for _ in range(2)
        ]
        outputs = [p.communicate(timeout=120) for p in procs]
        for p, (_out, err) in zip(procs, outputs, strict=True):
            assert p.returncode == 0, err
        ports = {out.strip() for out, _ in outputs}
        assert len(ports) == 1
        assert sandbox.status(directory) is not None
    finally:
        sandbox.stop(directory)
        assert not directory.exists()
        assert list(parent.iterdir()) == []  # no lock file left behind
        parent.rmdir()
