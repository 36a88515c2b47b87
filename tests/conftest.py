"""Fixtures shared by every test: a temporary covalent home, free ports, real servers."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

REPO = Path(__file__).resolve().parent.parent
POSTGRES_SH = REPO / "scripts" / "services" / "postgres.sh"
STORES = ("sqlite", "postgres")
"""The stores a test marked ``both_stores`` runs on (one test id each)."""


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


# PostgreSQL


@dataclass
class Postgres:
    """A real PostgreSQL server (scripts/services/postgres.sh) and a URL of its role."""

    url: str
    folder: Path | None  # None: started by someone else (COVALENT_TEST_POSTGRES_URL)

    def _script(self, command: str) -> subprocess.CompletedProcess[str]:
        assert self.folder is not None, "this PostgreSQL was started outside the tests"
        return subprocess.run(
            ["bash", str(POSTGRES_SH), command],
            env={**os.environ, "COVALENT_PG_DIR": str(self.folder)},
            capture_output=True,
            text=True,
            timeout=120,
        )

    def stop(self) -> None:
        done = self._script("down")
        assert done.returncode == 0, done.stderr

    def start(self) -> None:
        done = self._script("up")
        assert done.returncode == 0, done.stderr

    def database_url(self, name: str) -> str:
        return self.url.rsplit("/", 1)[0] + "/" + name

    def create_database(self) -> str:
        """A new, empty database owned by the role; its URL."""
        name = f"covalent_test_{secrets.token_hex(6)}"
        self._admin(f'CREATE DATABASE "{name}"')
        return self.database_url(name)

    def drop_database(self, url: str) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')

    def _admin(self, sql: str) -> None:
        dsn = self.url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql)


def start_postgres(folder: Path) -> Postgres:
    """Start a throw-away PostgreSQL in ``folder``; fail the test run loudly if it cannot
    start (set COVALENT_SKIP_POSTGRES=1 to skip the PostgreSQL variants instead)."""
    done = subprocess.run(
        ["bash", str(POSTGRES_SH), "up"],
        env={**os.environ, "COVALENT_PG_DIR": str(folder)},
        capture_output=True,
        text=True,
        timeout=180,
    )
    if done.returncode != 0 or not done.stdout.strip():
        message = (
            f"PostgreSQL could not be started by {POSTGRES_SH} up (rc {done.returncode}):\n"
            f"{done.stderr.strip()}\nInstall it with `bash {POSTGRES_SH} install`, or set "
            "COVALENT_SKIP_POSTGRES=1 to skip the PostgreSQL variants of the tests."
        )
        if os.environ.get("COVALENT_SKIP_POSTGRES") == "1":
            pytest.skip(message)
        pytest.fail(message, pytrace=False)
    return Postgres(done.stdout.strip().splitlines()[-1], folder)


def stop_postgres(pg: Postgres) -> None:
    if pg.folder is not None:
        subprocess.run(
            ["bash", str(POSTGRES_SH), "destroy"],
            env={**os.environ, "COVALENT_PG_DIR": str(pg.folder)},
            capture_output=True,
            timeout=120,
        )


def pg_folder() -> Path:
    """A folder for a PostgreSQL server of the tests' own (the postgres user must reach
    it, so not under pytest's private tmp folder)."""
    return Path("/tmp") / f"covalent-pg-test-{os.getpid()}-{secrets.token_hex(4)}"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Postgres]:
    """A real PostgreSQL for the whole run: the one in COVALENT_TEST_POSTGRES_URL (started
    by scripts/test.sh), else one started here and destroyed at the end."""
    external = os.environ.get("COVALENT_TEST_POSTGRES_URL")
    if external:
        yield Postgres(external, None)
        return
    pg = start_postgres(pg_folder())
    try:
        yield pg
    finally:
        stop_postgres(pg)


@pytest.fixture
def postgres_url(postgres_server: Postgres) -> Iterator[str]:
    """The URL (with its password) of a fresh database for this test, dropped after it."""
    url = postgres_server.create_database()
    yield url
    postgres_server.drop_database(url)


# which store a test runs on


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests marked ``both_stores`` run once on SQLite and once on PostgreSQL."""
    if metafunc.definition.get_closest_marker("both_stores") and "store" in metafunc.fixturenames:
        metafunc.parametrize("store", STORES)


@pytest.fixture
def store() -> str:
    """The store of this test's servers: "sqlite", or "postgres" for the PostgreSQL variant
    of a test marked ``both_stores``."""
    return "sqlite"


def use_database(home: Home, url: str) -> None:
    """Save ``url`` as the home's database, as `covalent config set dispatcher.db_url`."""
    config = home.root / "config" / "covalent.conf"
    config.write_text(config.read_text() + f'db_url = "{url}"\n')


# covalent homes and servers


@pytest.fixture
def home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store: str, request: pytest.FixtureRequest
) -> Iterator[Home]:
    """A fresh covalent home for this test, selected in this process's environment too,
    on a fresh PostgreSQL database for the ``postgres`` variant of a ``both_stores`` test.

    Any server started in it is stopped at the end.
    """
    port = free_port()
    env = home_env(tmp_path / "home", port)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("COVALENT_SERVER_URL", raising=False)
    monkeypatch.delenv("COVALENT_DATABASE_URL", raising=False)
    h = Home(tmp_path / "home", port, env)
    if store == "postgres":
        use_database(h, request.getfixturevalue("postgres_url"))
    yield h
    h.run("covalent", "stop")


def _shared_home(root: Path, database_url: str | None = None) -> Iterator[Home]:
    port = free_port()
    h = Home(root, port, home_env(root, port))
    if database_url:
        use_database(h, database_url)
    started = h.run("covalent", "start")
    assert started.returncode == 0, started.stderr
    yield h
    h.run("covalent", "stop")


@pytest.fixture(scope="session")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Home]:
    """One real server for tests that only dispatch and read results (each its own dispatch)."""
    yield from _shared_home(tmp_path_factory.mktemp("shared") / "home")


@pytest.fixture(scope="session")
def shared_postgres_server(
    tmp_path_factory: pytest.TempPathFactory, postgres_server: Postgres
) -> Iterator[Home]:
    """The shared server's twin on a PostgreSQL database of its own."""
    url = postgres_server.create_database()
    yield from _shared_home(tmp_path_factory.mktemp("shared-pg") / "home", url)
    postgres_server.drop_database(url)


@pytest.fixture
def server(store: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Home:
    """The shared server of this test's store, with this process's SDK pointed at it (no
    auto-start)."""
    name = "shared_postgres_server" if store == "postgres" else "shared_server"
    shared: Home = request.getfixturevalue(name)
    for key, value in shared.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("COVALENT_SERVER_URL", shared.url)
    monkeypatch.delenv("COVALENT_DATABASE_URL", raising=False)
    return shared
