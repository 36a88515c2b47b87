"""The remote-host layer shared by the SSH and Slurm executors (covalent/executor/hosts.py)."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from covalent._errors import ExecutorError
from covalent.executor.hosts import (
    HostError,
    LocalHost,
    SSHTarget,
    runner_command,
    sh,
    shell_path,
)
from tests.conftest import REPO


@pytest.mark.parametrize(
    ("path", "word"),
    [
        ("python3", "python3"),
        ("/usr/bin/python3", "/usr/bin/python3"),
        ("~", '"$HOME"'),
        ("~/venv/bin/python", '"$HOME"/venv/bin/python'),
        ("venv/bin/python", '"$HOME"/venv/bin/python'),
        ("/opt/my env/python", "'/opt/my env/python'"),
    ],
)
def test_one_rule_for_paths_on_a_host(path: str, word: str) -> None:
    assert shell_path(path) == word


def test_the_runner_is_started_one_way() -> None:
    command = runner_command("~/py/bin/python", "/s/req file", "/s/reply")
    assert command == (
        "\"$HOME\"/py/bin/python -m covalent.executor.runner --stream '/s/req file' /s/reply"
    )
    assert sh("echo hi") == "exec /bin/sh -c 'echo hi'"


def test_the_runner_loads_no_server_library() -> None:
    """Every remote electron starts the runner in a fresh Python: it must not pay for the
    server's libraries (SQLAlchemy alone took about a quarter of a second)."""
    script = (
        "import sys, covalent.executor.runner; "
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    loaded = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, env=env
    ).stdout.split()
    assert "covalent" in loaded
    server_side = {"sqlalchemy", "fastapi", "uvicorn", "starlette", "psycopg", "alembic"}
    assert not server_side & set(loaded), f"the runner imported {server_side & set(loaded)}"


def test_files_a_host_writes_are_private(tmp_path: Path) -> None:
    async def write() -> None:
        host = LocalHost({})
        await host.makedirs(str(tmp_path / "job"))
        await host.write(str(tmp_path / "job" / "request.pkl"), b"data")
        assert await host.read(str(tmp_path / "job" / "request.pkl")) == b"data"
        assert await host.read(str(tmp_path / "job" / "missing")) is None
        assert await host.read_from(str(tmp_path / "job" / "request.pkl"), 2, 10) == b"ta"
        assert await host.read_from(str(tmp_path / "job" / "missing"), 0, 10) == b""

    asyncio.run(write())
    assert stat.S_IMODE((tmp_path / "job").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "job" / "request.pkl").stat().st_mode) == 0o600


def test_a_missing_key_file_is_named(tmp_path: Path) -> None:
    target = SSHTarget("example.org", key_file=str(tmp_path / "nope"), who="SSHExecutor")
    with pytest.raises(HostError, match="SSH key file .*nope.* of SSHExecutor does not exist"):
        target.options()
    assert issubclass(HostError, ExecutorError)
    assert str(SSHTarget("h", 2222, "me")) == "me@h:2222"
