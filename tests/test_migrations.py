"""Schema migrations: a fresh database, one made by the first schema, one made before
migrations existed; data survives and the result matches the models."""

from __future__ import annotations

import json
import sqlite3
import zlib
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect

import covalent as ct
from covalent._store import migrate, schema
from covalent._store.changes import Changes
from covalent._store.store import Store
from covalent._wire import blobs as blobmod
from covalent._wire import manifest as manifestmod
from tests.conftest import Home


@ct.electron
def one():
    return 1


@ct.lattice
def tiny():
    return one()


def _columns(engine) -> dict[str, set[str]]:
    found = inspect(engine)
    return {t: {c["name"] for c in found.get_columns(t)} for t in found.get_table_names()}


def test_a_fresh_database_matches_the_models(tmp_path: Path) -> None:
    store = Store.sqlite(tmp_path / "db.sqlite", tmp_path / "blobs")
    before, after = store.create_schema()
    assert (before, after) == (None, migrate.head())
    columns = _columns(store.engine)
    for table in schema.metadata.sorted_tables:
        assert columns[table.name] == {c.name for c in table.columns}, table.name


def _old_dispatch(db: Path) -> str:
    """A COMPLETED dispatch written the way the first schema (0001) stored it."""
    graph = tiny.build_graph()
    manifest, blobs = manifestmod.from_graph(graph, (), {}, tiny)
    output = blobmod.dumps(1)
    digest = blobmod.digest(output)
    blobs[digest] = output
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO dispatches (dispatch_id, root_dispatch_id, lattice_name, status, "
            "created_at, start_time, end_time, node_count, manifest, summary, result_digest, "
            "error, results_dir) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                "old-1",
                "old-1",
                "tiny",
                "COMPLETED",
                1.0,
                1.0,
                2.0,
                1,
                manifestmod.dumps(manifest),
                json.dumps(manifestmod.summary(manifest)),
                digest,
                None,
                "/tmp",
            ),
        )
        conn.execute(
            "INSERT INTO nodes (dispatch_id, node_id, name, kind, status, executor, start_time, "
            "end_time, output_digest, output_repr, stdout, stderr, error, attempts) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                "old-1",
                0,
                "one",
                "electron",
                "COMPLETED",
                "local",
                1.0,
                2.0,
                digest,
                "1",
                "",
                "",
                None,
                1,
            ),
        )
        conn.executemany(
            "INSERT INTO blobs (digest, size, data, path) VALUES (?,?,?,?)",
            [(d, len(b), b, None) for d, b in blobs.items()],
        )
    return "old-1"


def test_an_old_database_is_migrated_and_keeps_its_dispatches(home: Home) -> None:
    db = home.root / "data" / "dispatcher.sqlite"
    db.parent.mkdir(parents=True)
    engine = create_engine(f"sqlite:///{db}")
    assert migrate.upgrade(engine, "0001") == (None, "0001")
    assert "parent_dispatch_id" not in _columns(engine)["dispatches"]
    dispatch_id = _old_dispatch(db)

    done = home.run("covalent", "db", "migrate")
    assert done.returncode == 0, done.stderr
    assert f"migrated from revision 0001 to {migrate.head()}" in done.stdout
    assert "parent_dispatch_id" in _columns(engine)["dispatches"]
    assert home.run("covalent", "start").returncode == 0
    result = ct.get_result(dispatch_id)
    assert result.status == ct.status.COMPLETED and result.result == 1
    assert result.get_node_result(0)["output"] == 1


def test_a_database_from_before_migrations_is_taken_as_the_first_schema(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    migrate.upgrade(engine, "0001")
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE alembic_version")
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path / "blobs")
    assert store.create_schema() == ("0001", migrate.head())


def test_a_database_from_a_newer_covalent_is_refused(tmp_path: Path) -> None:
    store = Store.sqlite(tmp_path / "db.sqlite", tmp_path / "blobs")
    store.create_schema()
    with store.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(ct.CovalentError, match="revision 9999.*upgrade covalent"):
        store.create_schema()


def test_a_downgrade_stores_compressed_manifests_as_json_again(tmp_path: Path) -> None:
    """0004 lets a large manifest be stored compressed; going back to 0003 (a covalent
    that reads only JSON) leaves every manifest as JSON."""
    store = Store.sqlite(tmp_path / "db.sqlite", tmp_path / "blobs")
    store.create_schema()
    large = {"nodes": [{"id": n, "name": "inc"} for n in range(20_000)]}
    for dispatch_id, manifest in (("large", large), ("small", {"nodes": []})):
        row = {
            "dispatch_id": dispatch_id,
            "root_dispatch_id": dispatch_id,
            "lattice_name": "flow",
            "status": "COMPLETED",
            "created_at": 1.0,
            "node_count": 0,
            "manifest": json.dumps(manifest).encode(),
            "summary": "{}",
            "results_dir": "",
        }
        store.create_dispatch(row, [], Changes())
    with sqlite3.connect(tmp_path / "db.sqlite") as conn:
        stored = dict(conn.execute("SELECT dispatch_id, manifest FROM dispatches"))
    assert stored["large"][:1] != b"{" and stored["small"][:1] == b"{"
    assert store.get_dispatch("large", with_manifest=True)["manifest"] == large
    store.close()
    migrate.downgrade(create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}"), "0003")
    with sqlite3.connect(tmp_path / "db.sqlite") as conn:
        stored = dict(conn.execute("SELECT dispatch_id, manifest FROM dispatches"))
    assert json.loads(stored["large"]) == large
    assert json.loads(stored["small"]) == {"nodes": []}


def test_a_downgrade_writes_out_the_summaries_read_from_manifests(tmp_path: Path) -> None:
    """0005 lets a small dispatch's row keep no summary (read from its manifest), and a
    manifest be compressed from a dictionary; going back to 0004 (a covalent that reads
    the summary column as JSON, and zlib without a dictionary) writes each summary out,
    a damaged manifest's as its lattice's name and no inputs, and compresses each
    manifest again without the dictionary."""
    store = Store.sqlite(tmp_path / "db.sqlite", tmp_path / "blobs")
    store.create_schema()
    manifest, _ = manifestmod.from_graph(tiny.build_graph(), (), {}, tiny)
    large = json.dumps({**manifest, "padding": ["inc"] * 2_000}).encode()
    rows = (("small", json.dumps(manifest).encode()), ("bad", b"x"), ("large", large))
    for dispatch_id, stored in rows:
        row = {
            "dispatch_id": dispatch_id,
            "root_dispatch_id": dispatch_id,
            "lattice_name": "tiny",
            "status": "COMPLETED",
            "created_at": 1.0,
            "node_count": 1,
            "manifest": stored,
            "summary": "",
            "results_dir": "",
        }
        store.create_dispatch(row, [], Changes())
    read = store.get_dispatch("small")
    assert read is not None and read["summary"] == manifestmod.summary(manifest)
    store.close()
    migrate.downgrade(create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}"), "0004")
    with sqlite3.connect(tmp_path / "db.sqlite") as conn:
        stored = dict(conn.execute("SELECT dispatch_id, summary FROM dispatches"))
    assert json.loads(stored["small"]) == manifestmod.summary(manifest)
    assert json.loads(stored["bad"])["lattice"]["name"] == "tiny"
    assert json.loads(stored["bad"])["inputs"]["args"] == []
    with sqlite3.connect(tmp_path / "db.sqlite") as conn:
        packed = dict(conn.execute("SELECT dispatch_id, manifest FROM dispatches"))
    assert zlib.decompress(packed["large"]) == large  # 0004 reads it: no dictionary
    migrate.downgrade(create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}"), "0003")
    with sqlite3.connect(tmp_path / "db.sqlite") as conn:
        packed = dict(conn.execute("SELECT dispatch_id, manifest FROM dispatches"))
    assert packed["large"] == large and packed["bad"] == b"x"  # the damaged one as it was
