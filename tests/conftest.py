"""Fixtures shared by every test: a temporary covalent home, free ports, real servers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def home_env(root: Path, port: int) -> dict[str, str]:
    """Environment variables that give covalent a home of its own under ``root``."""
    env = {
        "HOME": str(root),
        "COVALENT_CONFIG_DIR": str(root / "config"),
        "COVALENT_DATA_DIR": str(root / "data"),
        "COVALENT_CACHE_DIR": str(root / "cache"),
        "XDG_CONFIG_HOME": str(root / ".config"),
        "XDG_DATA_HOME": str(root / ".local/share"),
        "XDG_CACHE_HOME": str(root / ".cache"),
        # Servers and workers started from the tests run this checkout, whatever else
        # happens to be installed.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        # Every server a test starts checks each dispatch's invariants after every turn
        # (Run.validate); a broken one fails that dispatch with the reason.
        "COVALENT_VALIDATE": "1",
    }
    (root / "config").mkdir(parents=True, exist_ok=True)
    (root / "config" / "covalent.conf").write_text(f"[dispatcher]\nport = {port}\n")
    return env


def wait_for(
    condition: Callable[[], object], timeout: float = 60.0, what: str = "condition"
) -> object:
    """Poll ``condition`` until it is truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(delay)
        delay = min(delay * 2, 0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@dataclass
class Home:
    """A covalent home: its folder, its port and the environment that selects it."""

    root: Path
    port: int
    env: dict[str, str]

    @property
    def url(self) -> str:
        return f"http://localhost:{self.port}"

    def run(
        self, *args: str, timeout: float = 120.0, check: bool = False, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run a command (``covalent ...`` or ``python ...``) in this home."""
        command = list(args)
        if command[0] == "covalent":
            command = [sys.executable, "-m", "covalent._cli.main", *command[1:]]
        elif command[0] == "python":
            command = [sys.executable, *command[1:]]
        return subprocess.run(
            command,
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
            input=input,
            cwd=self.root,
        )

    def server_pid(self) -> int | None:
        import json

        try:
            return int(json.loads((self.root / "cache" / "server.pid").read_text())["pid"])
        except (FileNotFoundError, ValueError, KeyError):
            return None


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Home]:
    """A fresh covalent home for this test, selected in this process's environment too.

    Any server started in it is stopped at the end.
    """
    port = free_port()
    env = home_env(tmp_path / "home", port)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("COVALENT_SERVER_URL", raising=False)
    h = Home(tmp_path / "home", port, env)
    yield h
    h.run("covalent", "stop")


@pytest.fixture(scope="session")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Home]:
    """One real server for tests that only dispatch and read results (each its own dispatch)."""
    root = tmp_path_factory.mktemp("shared") / "home"
    port = free_port()
    h = Home(root, port, home_env(root, port))
    started = h.run("covalent", "start")
    assert started.returncode == 0, started.stderr
    yield h
    h.run("covalent", "stop")


@pytest.fixture
def server(shared_server: Home, monkeypatch: pytest.MonkeyPatch) -> Home:
    """The shared server, with this process's SDK pointed at it (no auto-start)."""
    for key, value in shared_server.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("COVALENT_SERVER_URL", shared_server.url)
    return shared_server
