"""File transfers without a server: locations, strategy checks, and the executor's hooks."""

from __future__ import annotations

from pathlib import Path

import pytest

import covalent as ct
import covalent.fs_strategies
from covalent._errors import WorkflowError
from covalent._workflow import transfer
from covalent.fs import File
from covalent.fs_strategies import HTTP, Rsync, Shutil


@pytest.mark.parametrize(
    ("location", "scheme", "filepath", "host"),
    [
        ("/data/in.csv", "file", "/data/in.csv", ""),
        ("data/in.csv", "file", "data/in.csv", ""),
        ("file:///data/my%20file.csv", "file", "/data/my file.csv", ""),
        ("https://example.org/a.csv", "https", "https://example.org/a.csv", ""),
        ("alice@hpc:/scratch/a.csv", "ssh", "/scratch/a.csv", "hpc"),
        ("hpc:relative.csv", "ssh", "relative.csv", "hpc"),
        ("ssh://alice@hpc:2222/scratch/a.csv", "ssh", "/scratch/a.csv", "hpc"),
        ("./odd:name.csv", "file", "./odd:name.csv", ""),
    ],
)
def test_locations(location: str, scheme: str, filepath: str, host: str) -> None:
    file = File(location)
    assert (file.scheme, file.filepath, file.host) == (scheme, filepath, host)


def test_a_plain_path_marked_remote_takes_its_host_from_rsync() -> None:
    ft = ct.fs.TransferFromRemote("/remote/a", "/local/a", strategy=Rsync("bob", "hpc"))
    assert ft.from_file.is_remote and not ft.to_file.is_remote
    assert ft.strategy.describe(ft.from_file) == "bob@hpc:/remote/a"
    assert ft.paths == ("/remote/a", "/local/a")
    assert ft.order is ct.fs.Order.BEFORE
    assert ct.fs.TransferToRemote("/a", "hpc:/b").order is ct.fs.Order.AFTER
    copied = File(File("/remote/a", remote=True))
    assert (copied.scheme, copied.filepath) == ("ssh", "/remote/a")


def test_default_strategies() -> None:
    assert isinstance(ct.fs.FileTransfer("/a", "/b").strategy, Shutil)
    assert isinstance(ct.fs.FileTransfer("http://h/a", "/b").strategy, HTTP)
    assert isinstance(ct.fs.FileTransfer("h:/a", "/b").strategy, Rsync)
    assert ct.fs_strategies.Shutil is covalent.fs_strategies.Shutil


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: ct.fs.FileTransfer("http://h/a", "/b", strategy=Shutil()), "copies local"),
        (lambda: ct.fs.FileTransfer("/a", "/b", strategy=HTTP()), "one side must be a URL"),
        (lambda: ct.fs.FileTransfer("h:/a", "/b", strategy=HTTP()), "http:// or https://"),
        (lambda: ct.fs.TransferFromRemote("/a", "/b"), "no host is named"),
        (lambda: ct.fs.FileTransfer("h:/a", "g:/b"), "must be local"),
        (lambda: ct.fs.FileTransfer("/a", "/b", order="later"), "Order.BEFORE or AFTER"),
        (lambda: ct.fs.FileTransfer("/a", "/b", strategy="rsync"), "ct.fs_strategies"),
        (lambda: ct.fs.FileTransfer("file://host/a", "/b"), "names a host"),
        (lambda: ct.fs.FileTransfer(123), r"a path, a URL or a ct.fs.File, got 123 \(int\)"),
        (lambda: HTTP(upload_method="PATCH"), "PUT or POST"),
    ],
)
def test_impossible_transfers_fail_where_the_workflow_is_built(make, message: str) -> None:
    with pytest.raises(WorkflowError, match=message):
        make()


def test_an_electron_with_files_must_accept_them() -> None:
    ft = ct.fs.FileTransfer("/a", "/b")
    with pytest.raises(WorkflowError, match="add a `files` parameter"):
        ct.electron(lambda x: x, files=[ft])
    with pytest.raises(WorkflowError, match="must hold ct.fs.FileTransfer"):
        ct.electron(lambda files: files, files=["/a"])
    assert ct.electron(lambda **kw: kw, files=ft).metadata["files"] == [ft]


def test_hooks_run_before_and_after_transfers_in_order(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("a")
    extras = {
        "files": [
            ct.fs.FileTransfer(tmp_path / "a", tmp_path / "in" / "a"),
            ct.fs.FileTransfer(tmp_path / "out", tmp_path / "sent", order=ct.fs.Order.AFTER),
        ]
    }
    given = transfer.apply_before(extras)
    assert given == {"files": [(str(tmp_path / "a"), str(tmp_path / "in" / "a")),
                               (str(tmp_path / "out"), str(tmp_path / "sent"))]}  # fmt: skip
    assert (tmp_path / "in" / "a").read_text() == "a"
    assert not (tmp_path / "sent").exists()
    with pytest.raises(transfer.FileTransferError, match=r"out -> .*sent with Shutil\(\) failed"):
        transfer.apply_after(extras)
    (tmp_path / "out").write_text("b")
    transfer.apply_after(extras)
    assert (tmp_path / "sent").read_text() == "b"
    assert transfer.apply_before({}) == {}
