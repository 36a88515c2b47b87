"""Triggers against a real server: time and folder triggers dispatch again, stop, and
survive a restart; bad ones fail at dispatch.

"No more dispatches" is shown with a witness: a second TimeTrigger with the same gap
keeps firing, and once it has fired a few more times the stopped one must not have.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy

import covalent as ct
from covalent._client.http import client_for
from covalent._errors import DispatchNotFoundError, WorkflowError
from covalent._wire import manifest as manifestmod
from tests.conftest import REPO, Home, wait_for

pytestmark = pytest.mark.both_stores  # and on PostgreSQL (tests/conftest.py)

GAP = 0.5
DEADLINE = 120.0  # a loaded, shared machine


@ct.electron
def add_one(x):
    return x + 1


def firings(url: str, dispatch_id: str) -> list[str]:
    """The dispatches made by the triggers of ``dispatch_id``, oldest first."""
    params: dict[str, Any] = {"dispatch_id": dispatch_id, "limit": 1000}
    answer = client_for(url).request("GET", "/triggers/firings", params=params).json()
    return [row["dispatch_id"] for row in reversed(answer["firings"])]


def triggers_of(url: str, dispatch_id: str) -> list[dict[str, Any]]:
    params = {"dispatch_id": dispatch_id}
    return client_for(url).request("GET", "/triggers", params=params).json()["triggers"]


def wait_for_firings(url: str, dispatch_id: str, count: int) -> list[str]:
    wait_for(
        lambda: len(firings(url, dispatch_id)) >= count,
        timeout=DEADLINE,
        what=f"{count} dispatches by the triggers of {dispatch_id}",
    )
    return firings(url, dispatch_id)


def assert_results(dispatch_ids: list[str], expected: int) -> None:
    for dispatch_id in dispatch_ids:
        result = ct.get_result(dispatch_id, wait=True)
        assert result.status == ct.status.COMPLETED, result.error
        assert result.result == expected
        assert result.root_dispatch_id == dispatch_id  # a top-level dispatch of its own


def time_flow(gap: float = GAP) -> ct.Lattice:
    @ct.lattice(triggers=ct.triggers.TimeTrigger(time_gap=gap))
    def every_gap(x):
        return add_one(x)

    return every_gap


def dir_flow(folder: Path, events: list[str], batch_size: int = 1) -> ct.Lattice:
    @ct.lattice(triggers=[ct.triggers.DirTrigger(str(folder), events, batch_size=batch_size)])
    def on_files(x):
        return add_one(x)

    return on_files


def test_time_trigger_dispatches_again_until_stopped(server: Home) -> None:
    stopped_one = ct.dispatch(time_flow())(41)
    witness = ct.dispatch(time_flow())(1)
    try:
        assert ct.get_result(stopped_one, wait=True).result == 42  # the first run: at once
        made = wait_for_firings(server.url, stopped_one, 2)
        assert_results(made[:2], 42)
        assert ct.get_result(made[0]).inputs["args"] == [41]

        ct.stop_triggers(stopped_one)
        after_stop = firings(server.url, stopped_one)
        witnessed = len(firings(server.url, witness))
        wait_for_firings(server.url, witness, witnessed + 3)  # three more gaps went by
        assert firings(server.url, stopped_one) == after_stop

        [row] = triggers_of(server.url, stopped_one)
        assert row["spec"] == {"kind": "time", "time_gap": GAP}
        assert not row["active"] and not row["armed"]
        assert row["fired"] == len(after_stop)
        assert row["last_dispatch_id"] == after_stop[-1]
    finally:
        ct.stop_triggers([stopped_one, witness])
    assert not triggers_of(server.url, witness)[0]["active"]


def test_dir_trigger_fires_on_the_events_asked_for_only(server: Home, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "existing.txt").write_text("a\n")
    dispatch_id = ct.dispatch(dir_flow(inbox, ["created"]))(1)
    try:
        # Events reach the trigger in order: once the creation below has made its
        # dispatch, the modification and deletion before it were seen and ignored.
        with open(inbox / "existing.txt", "a") as f:
            f.write("b\n")
        (inbox / "existing.txt").unlink()
        (inbox / "new.txt").write_text("c\n")
        made = wait_for_firings(server.url, dispatch_id, 1)
        assert len(made) == 1
        assert_results(made, 2)

        (inbox / "newer.txt").write_text("d\n")
        assert len(wait_for_firings(server.url, dispatch_id, 2)) == 2
    finally:
        ct.stop_triggers(dispatch_id)


def test_dir_trigger_batch_size(server: Home, tmp_path: Path) -> None:
    inbox = tmp_path / "batched"
    inbox.mkdir()
    dispatch_id = ct.dispatch(dir_flow(inbox, ["created"], batch_size=2))(1)
    try:
        for name in ("1", "2", "3", "4"):
            (inbox / name).write_text(name)
        wait_for_firings(server.url, dispatch_id, 2)
        assert len(firings(server.url, dispatch_id)) == 2  # one per two files, not four
    finally:
        ct.stop_triggers(dispatch_id)


def test_disable_run_only_arms(server: Home) -> None:
    dispatch_id = ct.dispatch(time_flow(), disable_run=True)(9)
    try:
        made = wait_for_firings(server.url, dispatch_id, 1)
        assert_results(made[:1], 10)
        assert ct.get_result(dispatch_id).status == ct.status.NEW_OBJECT
        waited: list[Any] = []  # it never runs: a wait for it returns at once
        waiter = threading.Thread(
            target=lambda: waited.append(ct.get_result(dispatch_id, True)), daemon=True
        )
        waiter.start()
        waiter.join(DEADLINE)
        assert not waiter.is_alive() and waited[0].status == ct.status.NEW_OBJECT
    finally:
        ct.stop_triggers(dispatch_id)


def test_deleting_the_dispatch_or_the_folder_disarms(server: Home, tmp_path: Path) -> None:
    timed = ct.dispatch(time_flow())(1)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    watched = ct.dispatch(dir_flow(inbox, ["created"]))(1)
    try:
        ct.get_result(timed, wait=True)
        client_for(server.url).delete(timed)  # nothing left to dispatch again
        wait_for(
            lambda: not triggers_of(server.url, timed)[0]["active"],
            timeout=DEADLINE,
            what="the deleted dispatch's trigger to stop",
        )

        def unarmed() -> dict[str, Any] | None:
            [row] = triggers_of(server.url, watched)
            return row if row["problem"] else None

        inbox.rmdir()
        row = wait_for(unarmed, timeout=DEADLINE, what="the trigger to notice its folder is gone")
        assert isinstance(row, dict) and "folder was deleted" in row["problem"]
        assert row["active"] and not row["armed"]
    finally:
        with contextlib.suppress(DispatchNotFoundError):  # deleted, unless the test failed first
            ct.stop_triggers(timed)
        ct.stop_triggers(watched)


def test_bad_triggers_fail_at_dispatch(server: Home, tmp_path: Path) -> None:
    missing = tmp_path / "missing"

    def dispatched(triggers: Any) -> str:
        @ct.lattice(triggers=triggers)
        def never_stored(x):
            return add_one(x)

        return ct.dispatch(never_stored)(1)

    with pytest.raises(WorkflowError, match=re.escape(f"cannot watch '{missing}': no such")):
        dispatched(ct.triggers.DirTrigger(str(missing), ["created"]))
    with pytest.raises(WorkflowError, match="unknown event name 'touched'"):
        dispatched(ct.triggers.DirTrigger(str(tmp_path), ["created", "touched"]))
    with pytest.raises(WorkflowError, match="time_gap of at least 0.1 seconds, got 0"):
        dispatched(ct.triggers.TimeTrigger(0))
    with pytest.raises(WorkflowError, match="at least 0.1 seconds, got 1e-09"):
        dispatched(ct.triggers.TimeTrigger(1e-9))  # it fired ~330 dispatches a second
    with pytest.raises(WorkflowError, match="triggers= takes ct.triggers objects"):
        dispatched(5)
    # a database the server has no SQLAlchemy dialect or driver for: it was listed as
    # armed, and its poller had died at once, so it never fired
    with pytest.raises(WorkflowError, match=r"cannot read nosuchdb://host/db .*NoSuchModule"):
        dispatched(ct.triggers.DatabaseTrigger("nosuchdb://host/db", "jobs"))
    with pytest.raises(WorkflowError, match=r"read postgresql\+nodriver://scott:\*\*\*@host/db "):
        dispatched(ct.triggers.DatabaseTrigger("postgresql+nodriver://scott:tiger@host/db", "t"))
    lattices = {d["lattice_name"] for d in client_for(server.url).list_dispatches()["dispatches"]}
    assert "never_stored" not in lattices

    # The server judges the specs too, before storing anything.
    manifest, blobs = manifestmod.from_graph(time_flow().build_graph(1), (1,), {})
    manifest["triggers"] = [{"kind": "time", "time_gap": -1}]
    with pytest.raises(WorkflowError, match="at least 0.1 seconds, got -1"):
        client_for(server.url).submit(manifest, blobs)

    with pytest.raises(DispatchNotFoundError, match="no-such-dispatch"):
        ct.stop_triggers(["no-such-dispatch"])


def test_triggers_survive_a_restart(home: Home, tmp_path: Path) -> None:
    assert home.run("covalent", "start").returncode == 0
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    timed = ct.dispatch(time_flow())(1)
    watched = ct.dispatch(dir_flow(inbox, ["created"]))(10)
    try:
        wait_for_firings(home.url, timed, 1)
        (inbox / "before.txt").write_text("x")
        wait_for_firings(home.url, watched, 1)

        assert home.run("covalent", "stop").returncode == 0
        assert home.run("covalent", "start").returncode == 0
        for dispatch_id in (timed, watched):
            [row] = triggers_of(home.url, dispatch_id)
            assert row["active"] and row["armed"], row

        before = len(firings(home.url, timed))
        assert_results(wait_for_firings(home.url, timed, before + 2)[before:], 2)
        (inbox / "after.txt").write_text("y")
        made = wait_for_firings(home.url, watched, 2)
        assert len(made) == 2
        assert_results(made[1:], 11)
    finally:
        ct.stop_triggers([timed, watched])


def test_triggers_example(home: Home) -> None:
    assert home.run("covalent", "start").returncode == 0
    done = home.run("python", str(REPO / "examples" / "triggers.py"), timeout=DEADLINE)
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    match = re.search(r"dispatched ([0-9a-f-]{36})", done.stdout)
    assert match, done.stdout
    assert "triggers stopped" in done.stdout
    [row] = triggers_of(home.url, match.group(1))
    assert not row["active"] and row["fired"] >= 2


def test_register_attaches_a_trigger_to_a_dispatch_made_already(server: Home) -> None:
    @ct.lattice
    def plain(x):
        return add_one(x)

    dispatch_id = ct.dispatch(plain)(4)
    witness = ct.dispatch(time_flow())(1)
    try:
        trigger = ct.triggers.TimeTrigger(time_gap=GAP)
        trigger.lattice_dispatch_id = dispatch_id
        [trigger_id] = trigger.register()
        assert_results(wait_for_firings(server.url, dispatch_id, 2)[:2], 5)
        [row] = triggers_of(server.url, dispatch_id)
        assert row["trigger_id"] == trigger_id and row["active"]

        ct.stop_triggers(dispatch_id)
        after_stop = firings(server.url, dispatch_id)
        wait_for_firings(server.url, witness, len(firings(server.url, witness)) + 3)
        assert firings(server.url, dispatch_id) == after_stop
    finally:
        ct.stop_triggers([dispatch_id, witness])
    unknown = ct.triggers.TimeTrigger(1, lattice_dispatch_id="no-such-dispatch")
    with pytest.raises(DispatchNotFoundError):
        unknown.register()


@ct.electron
def double_in_file(path: str) -> int:
    """Doubles the number in the file, appends the new one to a log; returns it."""
    number = int(Path(path).read_text()) * 2
    Path(f"{path}.new").write_text(str(number))
    os.replace(f"{path}.new", path)  # whole: the test reads it meanwhile (it read "" once)
    with open(f"{path}.log", "a") as f:
        f.write(f"{number}\n")
    return number


def test_a_time_trigger_doubles_a_number_every_two_seconds(server: Home, tmp_path: Path) -> None:
    state = tmp_path / "number"
    state.write_text("2")

    @ct.lattice(triggers=ct.triggers.TimeTrigger(time_gap=2))
    def doubling(path):
        return double_in_file(path)

    dispatch_id = ct.dispatch(doubling)(str(state))
    try:
        wait_for(lambda: int(state.read_text()) >= 32, timeout=DEADLINE, what="32 in the file")
    finally:
        ct.stop_triggers(dispatch_id)
    log = (tmp_path / "number.log").read_text().split()
    assert log[:4] == ["4", "8", "16", "32"]  # the dispatch, then one per firing


def test_a_dir_trigger_on_modified_fires_for_every_modification(
    server: Home, tmp_path: Path
) -> None:
    folder = tmp_path / "watched"
    folder.mkdir()
    target = folder / "data.txt"
    target.write_text("0\n")

    @ct.lattice(triggers=ct.triggers.DirTrigger(str(folder), event_names="modified"))
    def on_change(x):
        return add_one(x)

    dispatch_id = ct.dispatch(on_change)(1)
    try:
        for round_ in range(1, 4):
            before = len(firings(server.url, dispatch_id))
            with open(target, "a") as f:
                f.write(f"{round_}\n")
            wait_for_firings(server.url, dispatch_id, before + 1)
        assert_results(firings(server.url, dispatch_id)[:3], 2)
        assert triggers_of(server.url, dispatch_id)[0]["spec"]["event_names"] == ["modified"]
    finally:
        ct.stop_triggers(dispatch_id)


# Database triggers. ``database_url`` gives each test an empty database; to run these
# tests on PostgreSQL too, add "postgresql" to its params (it then takes the URL of the
# ``postgres_url`` fixture). Each test makes tables of its own, named uniquely.


@pytest.fixture(params=["sqlite"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'triggers.sqlite'}"
    return str(request.getfixturevalue("postgres_url"))


def make_table(url: str) -> tuple[Any, str]:
    """An engine on ``url`` and the name of a new table ``(id, state)`` in it."""
    engine = sqlalchemy.create_engine(url)
    name = f"jobs_{uuid.uuid4().hex[:12]}"
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text(f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, state TEXT)"))
    return engine, name


def execute(engine: Any, statement: str) -> None:
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text(statement))


def polls(url: str, dispatch_id: str) -> int:
    return int(triggers_of(url, dispatch_id)[0]["polls"])


def wait_for_polls(url: str, dispatch_id: str, count: int) -> None:
    wait_for(lambda: polls(url, dispatch_id) >= count, timeout=DEADLINE, what=f"{count} polls")


def db_flow(trigger: Any) -> ct.Lattice:
    @ct.lattice(triggers=trigger)
    def on_rows(x):
        return add_one(x)

    return on_rows


def test_database_trigger_fires_when_matching_rows_change(server: Home, database_url: str) -> None:
    engine, name = make_table(database_url)
    trigger = ct.triggers.DatabaseTrigger(
        database_url, name, poll_interval=0.2, where_clauses=["state = 'new'"]
    )
    dispatch_id = ct.dispatch(db_flow(trigger))(7)
    try:
        wait_for_polls(server.url, dispatch_id, 1)  # the baseline: an empty table
        execute(engine, f"INSERT INTO {name} (id, state) VALUES (1, 'old')")  # not matching
        wait_for_polls(server.url, dispatch_id, polls(server.url, dispatch_id) + 2)
        assert firings(server.url, dispatch_id) == []
        execute(engine, f"INSERT INTO {name} (id, state) VALUES (2, 'new')")
        assert_results(wait_for_firings(server.url, dispatch_id, 1), 8)
        execute(engine, f"UPDATE {name} SET state = 'new' WHERE id = 1")  # a row changed
        wait_for_firings(server.url, dispatch_id, 2)
        wait_for_polls(server.url, dispatch_id, polls(server.url, dispatch_id) + 2)
        assert len(firings(server.url, dispatch_id)) == 2  # nothing changed since
        [row] = triggers_of(server.url, dispatch_id)
        assert row["armed"] and row["problem"] == ""
    finally:
        ct.stop_triggers(dispatch_id)
        engine.dispose()


def test_database_trigger_reports_a_missing_table(server: Home, database_url: str) -> None:
    trigger = ct.triggers.DatabaseTrigger(database_url, "no_such_table", poll_interval=0.2)
    dispatch_id = ct.dispatch(db_flow(trigger))(1)
    try:
        wait_for(
            lambda: "no_such_table" in triggers_of(server.url, dispatch_id)[0]["problem"],
            timeout=DEADLINE,
            what="the problem reported",
        )
        assert not triggers_of(server.url, dispatch_id)[0]["armed"]
    finally:
        ct.stop_triggers(dispatch_id)


def test_sqlite_trigger_on_a_file(server: Home, tmp_path: Path) -> None:
    path = tmp_path / "inbox.db"
    engine, name = make_table(f"sqlite:///{path}")
    trigger = ct.triggers.SQLiteTrigger(str(path), name, poll_interval=0.2, trigger_after_n=2)
    dispatch_id = ct.dispatch(db_flow(trigger))(10)
    try:
        wait_for_polls(server.url, dispatch_id, 1)
        execute(engine, f"INSERT INTO {name} (id, state) VALUES (1, 'a')")  # one row: below 2
        wait_for_polls(server.url, dispatch_id, polls(server.url, dispatch_id) + 2)
        assert firings(server.url, dispatch_id) == []
        execute(engine, f"INSERT INTO {name} (id, state) VALUES (2, 'b')")
        assert_results(wait_for_firings(server.url, dispatch_id, 1), 11)
    finally:
        ct.stop_triggers(dispatch_id)
        engine.dispose()
