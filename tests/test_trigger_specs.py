"""Trigger specs: what ct.triggers objects become in the manifest, and what is refused."""

from __future__ import annotations

import json
import os

import pytest

import covalent as ct
from covalent._errors import WorkflowError
from covalent._wire import manifest
from covalent._wire.triggers import check, shown, specs_of


@ct.electron
def identity(x):
    return x


def manifest_of(triggers):
    @ct.lattice(triggers=triggers)
    def flow(x):
        return identity(x)

    return manifest.from_graph(flow.build_graph(1), (1,), {}, flow)[0]


def test_no_triggers_no_key():
    assert "triggers" not in manifest_of(None)


def test_one_trigger_or_a_list_become_json_specs(tmp_path):
    one = manifest_of(ct.triggers.TimeTrigger(5))
    assert one["triggers"] == [{"kind": "time", "time_gap": 5.0}]
    both = manifest_of(
        [ct.triggers.TimeTrigger(0.5), ct.triggers.DirTrigger(tmp_path, "created", recursive=True)]
    )
    assert both["triggers"][1] == {
        "kind": "dir",
        "dir_path": str(tmp_path),
        "event_names": ["created"],
        "recursive": True,
        "batch_size": 1,
    }
    json.dumps(both["triggers"])  # plain data


def test_relative_folder_is_taken_from_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = ct.triggers.DirTrigger("inbox", ["modified", "moved"]).to_spec()
    assert spec["dir_path"] == os.path.join(str(tmp_path), "inbox")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"kind": "time", "time_gap": 0}, "at least 0.1 seconds, got 0"),
        ({"kind": "time", "time_gap": 0.01}, "at least 0.1 seconds, got 0.01"),
        ({"kind": "time", "time_gap": -2.5}, "got -2.5"),
        ({"kind": "time", "time_gap": "5"}, "got '5'"),
        ({"kind": "time", "time_gap": float("inf")}, "got inf"),
        ({"kind": "time", "time_gap": True}, "got True"),
        ({"kind": "dir", "dir_path": "rel", "event_names": ["created"]}, "absolute path"),
        ({"kind": "dir", "dir_path": "/x", "event_names": []}, "needs event_names"),
        ({"kind": "dir", "dir_path": "/x", "event_names": ["touched"]}, "'touched'"),
        ({"kind": "dir", "dir_path": "/x", "event_names": "created", "batch_size": 0}, "batch"),
        ({"kind": "database", "db_url": "not a url", "table_name": "t"}, "SQLAlchemy database"),
        ({"kind": "database", "db_url": "sqlite://", "table_name": ""}, "needs a table_name"),
        (
            {"kind": "database", "db_url": "sqlite://", "table_name": "t", "where_clauses": [1]},
            "SQL",
        ),
        (
            {"kind": "database", "db_url": "sqlite://", "table_name": "t", "poll_interval": 0},
            "poll",
        ),
        (
            {"kind": "database", "db_url": "sqlite://", "table_name": "t", "trigger_after_n": 0},
            "1 or",
        ),
        ({"kind": "cron"}, "kind is 'dir', 'time' or 'database'"),
        ("time", "kind is 'dir', 'time' or 'database'"),
    ],
)
def test_bad_specs_get_one_sentence(spec, message):
    with pytest.raises(WorkflowError, match=message) as caught:
        check(spec)
    assert str(caught.value).count(". ") == 0


def test_triggers_must_be_trigger_objects():
    with pytest.raises(WorkflowError, match="got 'every minute'"):
        specs_of("every minute")
    with pytest.raises(WorkflowError, match="unknown event name 'touched'"):
        manifest_of(ct.triggers.DirTrigger("/tmp", ["touched"]))


def test_database_triggers_become_json_specs(tmp_path):
    sqlite = ct.triggers.SQLiteTrigger(tmp_path / "jobs.db", "jobs", poll_interval=0.5)
    assert manifest_of(sqlite)["triggers"] == [
        {
            "kind": "database",
            "db_url": f"sqlite:///{tmp_path / 'jobs.db'}",
            "table_name": "jobs",
            "where_clauses": [],
            "poll_interval": 0.5,
            "trigger_after_n": 1,
        }
    ]
    url = "postgresql+psycopg://ada:secret@db.example/covalent"
    database = ct.triggers.DatabaseTrigger(url, "public.jobs", where_clauses=["state = 'new'"])
    spec = database.to_spec()
    assert spec["db_url"] == url and spec["where_clauses"] == ["state = 'new'"]
    assert "secret" not in shown(spec)["db_url"] and "ada" in shown(spec)["db_url"]


def test_register_needs_a_dispatch_id():
    with pytest.raises(WorkflowError, match="lattice_dispatch_id"):
        ct.triggers.TimeTrigger(1).register()
    trigger = ct.triggers.TimeTrigger(1, lattice_dispatch_id="abc")
    assert trigger.lattice_dispatch_id == "abc" and "abc" in repr(trigger)
