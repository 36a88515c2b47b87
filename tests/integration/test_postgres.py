"""A team server on a real PostgreSQL: the saved store, an outage and the recovery, one
server per database, and the password kept out of every output.

The core of the integration suite also runs on PostgreSQL (the tests marked
``both_stores``); these are what only PostgreSQL has.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import covalent as ct
from covalent._errors import StoreUnavailableError
from tests.conftest import (
    Home,
    Postgres,
    free_port,
    home_env,
    pg_folder,
    start_postgres,
    stop_postgres,
    wait_for,
)


@ct.electron
def double(x):
    return 2 * x


@ct.electron
def wait_for_file(path):
    import os
    import time

    deadline = time.monotonic() + 300
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.05)
    return "released"


@ct.lattice
def doubled(x):
    return double(double(x))


@ct.lattice
def held(path):
    return double(wait_for_file(path))


def password(url: str) -> str:
    return url.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]


def start(home: Home, *args: str, env: dict[str, str] | None = None) -> str:
    done = run(home, "covalent", "start", *args, env=env)
    assert done.returncode == 0, done.stderr
    return done.stderr


def run(home: Home, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    if not env:
        return home.run(*args)
    command = [sys.executable, "-m", "covalent._cli.main", *args[1:]]
    return subprocess.run(
        command, env={**os.environ, **home.env, **env}, capture_output=True, text=True, timeout=120
    )


def outputs_of(home: Home) -> str:
    """Everything the CLI shows about the server and its configuration, and its log."""
    shown = [home.run("covalent", *args).stdout for args in (["status"], ["config"], ["ls"])]
    shown.append(home.run("covalent", "config", "get", "dispatcher").stdout)
    shown.append(httpx.get(f"{home.url}/api/v1/health").text)
    shown.append(httpx.get(f"{home.url}/api/v1/ui/config").text)
    shown.append((home.root / "cache" / "server.log").read_text())
    return "\n".join(shown)


@pytest.fixture
def own_postgres() -> Iterator[Postgres]:
    """A PostgreSQL of this test's own, which it may stop and start again."""
    pg = start_postgres(pg_folder())
    try:
        yield pg
    finally:
        stop_postgres(pg)


def test_an_outage_answers_503_and_the_server_recovers_by_itself(
    home: Home, own_postgres: Postgres, tmp_path: Path
) -> None:
    url = own_postgres.create_database()
    start(home, "--database-url", url)
    release = tmp_path / "release"
    running = ct.dispatch(held)(str(release))
    wait_for(lambda: ct.get_result(running).get_node_result(0)["status"] == "RUNNING")

    own_postgres.stop()
    status = home.run("covalent", "status")
    assert status.returncode == StoreUnavailableError.exit_code
    assert "Database: postgresql+psycopg://covalent:***@127.0.0.1:" in status.stdout
    assert "UNREACHABLE" in status.stdout and "is unavailable" in status.stdout
    answer = httpx.get(f"{home.url}/api/v1/dispatches")
    assert answer.status_code == 503
    assert answer.json()["error"] == "StoreUnavailableError"
    with pytest.raises(StoreUnavailableError, match="The database .* is unavailable"):
        ct.dispatch(doubled)(1)
    listed = home.run("covalent", "ls")
    assert listed.returncode == StoreUnavailableError.exit_code
    assert listed.stderr.startswith("Error: The database postgresql+psycopg://covalent:***@")
    release.touch()  # the electron finishes while the database is down: kept for later

    own_postgres.start()
    wait_for(lambda: home.run("covalent", "status").returncode == 0, what="a healthy status")
    assert "(reachable)" in home.run("covalent", "status").stdout
    result = ct.get_result(running, wait=True)
    assert result.status == ct.status.COMPLETED, result.error
    assert result.result == "releasedreleased"
    assert ct.dispatch_sync(doubled)(3).result == 12
    assert password(url) not in outputs_of(home)


def test_a_second_server_on_the_same_database_is_refused(
    home: Home, postgres_url: str, tmp_path: Path
) -> None:
    start(home, "--database-url", postgres_url)
    first = ct.dispatch_sync(doubled)(2)
    port = free_port()
    other = Home(tmp_path / "other", port, home_env(tmp_path / "other", port))
    refused = run(other, "covalent", "start", "--database-url", postgres_url)
    assert refused.returncode == StoreUnavailableError.exit_code
    assert "Another covalent server (covalent-server" in refused.stderr
    assert "only one may at a time" in refused.stderr
    assert password(postgres_url) not in refused.stderr
    assert not (other.root / "config" / "covalent.conf").read_text().count("db_url")

    assert home.run("covalent", "stop").returncode == 0
    try:
        start(other, "--database-url", postgres_url)
        listed = other.run("covalent", "ls", "--json")
        assert first.dispatch_id in listed.stdout  # the same store, taken over whole
    finally:
        other.run("covalent", "stop")


def test_a_restart_without_the_environment_variable_keeps_the_database(
    home: Home, postgres_url: str
) -> None:
    start(home, env={"COVALENT_DATABASE_URL": postgres_url})
    first = ct.dispatch_sync(doubled)(5)
    restarted = home.run("covalent", "restart")  # no COVALENT_DATABASE_URL here
    assert restarted.returncode == 0, restarted.stderr
    assert "Warning" not in restarted.stderr
    status = home.run("covalent", "status").stdout
    assert "Database: postgresql+psycopg://covalent:***@" in status
    assert ct.get_result(first.dispatch_id).result == 20

    # A plain start without it is another store: said loudly, on stderr.
    home.run("covalent", "stop")
    warned = start(home)
    assert "Warning: the server now uses the database sqlite:///" in warned
    assert "not postgresql+psycopg://covalent:***@" in warned
    assert password(postgres_url) not in warned


def test_start_saves_the_database_url_only_once_the_server_answers(
    home: Home, postgres_url: str
) -> None:
    unreachable = postgres_url.rsplit(":", 1)[0] + ":1/nowhere"
    failed = home.run("covalent", "start", "--database-url", unreachable)
    assert failed.returncode != 0
    assert "is unavailable" in failed.stderr
    assert password(postgres_url) not in failed.stderr + failed.stdout
    assert "db_url" not in (home.root / "config" / "covalent.conf").read_text()

    start(home, "--database-url", postgres_url)
    again = home.run("covalent", "start", "--database-url", unreachable)
    assert "already running on another database (postgresql+psycopg://covalent:***@" in (
        again.stderr
    )
    saved = (home.root / "config" / "covalent.conf").read_text()
    assert f'db_url = "{postgres_url}"' in saved
    assert home.run("covalent", "config", "get", "dispatcher.db_url").stdout.strip() == (
        postgres_url.replace(password(postgres_url), "***")
    )
    assert ct.dispatch_sync(doubled)(1).result == 4
    assert password(postgres_url) not in outputs_of(home)


def test_a_missing_driver_is_named_with_what_to_install(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['psycopg'] = None\n"  # as if psycopg were not installed
        "from covalent._store.store import Store\n"
        f"Store('postgresql://u:secret@127.0.0.1:1/db', {str(tmp_path)!r})\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode != 0
    assert "needs the PostgreSQL driver psycopg" in done.stderr
    assert "pip install 'covalent[postgres]'" in done.stderr
    assert "secret" not in done.stderr


def test_a_large_dispatch_is_stored_in_parts_and_swept_on_postgresql(
    own_postgres: Postgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The staged write of a large new dispatch (tests/test_store.py has it on SQLite):
    every part there at the end; a write that fails part way and is not cleaned up is
    removed by the next start's sweep."""
    from covalent._store import store as storemod
    from covalent._store.changes import Changes
    from tests.test_store import _nodes_of, _row

    monkeypatch.setattr(storemod, "STAGED_ROWS", 10)
    store = storemod.Store(own_postgres.url, tmp_path / "blobs")
    try:
        store.create_schema()
        store.create_dispatch(_row("big", 35), _nodes_of("big", 35), Changes())
        assert [n["node_id"] for n in store.get_nodes("big")] == list(range(35))
        real_insert, calls = store._sql.insert, [0]

        def failing_insert(*args: object, **kwargs: object) -> None:
            calls[0] += 1
            if calls[0] == 3:
                raise StoreUnavailableError("the database went away")
            real_insert(*args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(store._sql, "insert", failing_insert)
        monkeypatch.setattr(store, "_drop_staged", lambda _id: None)  # as if it died
        with pytest.raises(StoreUnavailableError):
            store.create_dispatch(_row("half", 35), _nodes_of("half", 35), Changes())
        assert len(store.get_nodes("half")) == 10
    finally:
        store.close()
    again = storemod.Store(own_postgres.url, tmp_path / "blobs")
    try:
        assert again.sweep_staged() == 1
        assert again.get_nodes("half") == [] and again.get_dispatch("half") is None
        assert len(again.get_nodes("big")) == 35
    finally:
        again.close()
