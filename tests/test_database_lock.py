"""The dispatch lock of a SQLite store (covalent/_store/lock.py FileLock, taken by the
server's Guard): one holder per database file, however the file is named."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from covalent._errors import StoreLockedError
from covalent._server.database import Guard
from covalent._store.lock import FileLock
from covalent._store.store import Store


def _guard(db: Path, blobs: Path) -> tuple[Store, Guard]:
    store = Store.sqlite(db, blobs)
    return store, Guard(store)


def test_a_second_holder_is_refused_naming_the_first(tmp_path: Path) -> None:
    first_store, first = _guard(tmp_path / "db.sqlite", tmp_path / "blobs")
    second_store, second = _guard(tmp_path / "db.sqlite", tmp_path / "blobs")
    try:
        first.acquire()
        with pytest.raises(StoreLockedError, match=f"process {os.getpid()} on "):
            second.acquire()
        assert first.health()["dispatch_lock"] is True
        assert second.health()["dispatch_lock"] is False
        assert isinstance(first.lock, FileLock)
        first.lock.release()
        second.acquire()  # let go: the next one takes it
    finally:
        for store, guard in ((first_store, first), (second_store, second)):
            if guard.lock is not None:
                guard.lock.release()
            store.close()


def test_one_file_reached_through_a_symlink_has_one_lock(tmp_path: Path) -> None:
    # a db_path that is a symlink to another home's database got a lock of its own
    (tmp_path / "shared").mkdir()
    real = tmp_path / "shared" / "db.sqlite"
    link = tmp_path / "link.sqlite"
    first_store, first = _guard(real, tmp_path / "blobs")
    link.symlink_to(real)
    second_store, second = _guard(link, tmp_path / "blobs")
    try:
        first.acquire()
        with pytest.raises(StoreLockedError, match="Another covalent server"):
            second.acquire()
    finally:
        for store, guard in ((first_store, first), (second_store, second)):
            if guard.lock is not None:
                guard.lock.release()
            store.close()


def test_an_in_memory_store_has_no_lock() -> None:
    store = Store("sqlite://", "/nonexistent-blobs")
    try:
        assert Guard(store).lock is None
    finally:
        store.close()


def test_a_path_with_url_characters_is_the_file_it_names(tmp_path: Path) -> None:
    # "?mode=ro" was read as a URL query: the server opened /t/q, and "%41" became "A"
    folder = tmp_path / "q?mode=ro"
    folder.mkdir()
    db = folder / "d%41b.sqlite"
    store, guard = _guard(db, tmp_path / "blobs")
    try:
        store.create_schema()
        guard.acquire()
        assert store.engine.url.database == str(db)
        assert Path(f"{db}.lock").exists()
        assert not (tmp_path / "q").exists() and not (folder / "dAb.sqlite").exists()
        assert db.stat().st_size > 0  # the schema went into this very file
    finally:
        if guard.lock is not None:
            guard.lock.release()
        store.close()
