"""File transfers through a real server: Shutil, Rsync over a real sshd, HTTP to a real
web server; the order of set-up on the executor; failures that name the file."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import covalent as ct
from covalent.fs_strategies import HTTP, Rsync, Shutil
from tests.conftest import Home
from tests.integration import httpd as httpd_service
from tests.integration import sshd as sshd_service
from tests.integration.httpd import Httpd
from tests.integration.sshd import Sshd

sshd = sshd_service.sshd  # the session fixture: a real sshd on loopback
httpd = httpd_service.httpd  # a real HTTP file server on loopback


@ct.electron
def upper(files):
    """Read the first transfer's destination; write the second's source."""
    (_, staged), (produced, _) = files[:2]
    Path(produced).write_text(Path(staged).read_text().upper())
    return files


@ct.electron
def show(files):
    return files


def rsync_strategy(sshd: Sshd, **overrides: object) -> Rsync:
    if shutil.which("rsync") is None:
        pytest.skip("rsync is not installed; run `bash scripts/services/rsync.sh install`")
    settings: dict[str, object] = {
        "user": sshd.username,
        "host": "127.0.0.1",
        "port": sshd.port,
        "private_key_path": str(sshd.client_key),
        "known_hosts": str(sshd.known_hosts),
        "strict_host_key_checking": "yes",
    }
    settings.update(overrides)
    return Rsync(**settings)  # type: ignore[arg-type]


def test_shutil_copies_before_and_after_and_the_electron_gets_the_paths(
    server: Home, tmp_path: Path
) -> None:
    (tmp_path / "in.txt").write_text("hello")
    work, results = tmp_path / "work", tmp_path / "results"
    transfers = [
        ct.fs.FileTransfer(f"file://{tmp_path}/in.txt", work / "in.txt", strategy=Shutil()),
        ct.fs.FileTransfer(
            str(work / "out.txt"), f"file://{results}/deep/out.txt", order=ct.fs.Order.AFTER
        ),
    ]
    step = ct.electron(upper.function, files=transfers)

    @ct.lattice
    def flow():
        return step()

    result = ct.dispatch_sync(flow)()
    assert result.status == ct.status.COMPLETED, result.error
    assert result.result == [
        (str(tmp_path / "in.txt"), str(work / "in.txt")),
        (str(work / "out.txt"), str(results / "deep" / "out.txt")),
    ]
    assert (results / "deep" / "out.txt").read_text() == "HELLO"


def test_shutil_copies_a_folder(server: Home, tmp_path: Path) -> None:
    (tmp_path / "src" / "sub").mkdir(parents=True)
    (tmp_path / "src" / "sub" / "a.txt").write_text("a")
    step = ct.electron(
        show.function, files=[ct.fs.FileTransfer(tmp_path / "src", tmp_path / "copy")]
    )

    @ct.lattice
    def flow():
        return step()

    result = ct.dispatch_sync(flow)()
    assert result.status == ct.status.COMPLETED, result.error
    assert (tmp_path / "copy" / "sub" / "a.txt").read_text() == "a"


def test_rsync_fetches_from_and_sends_to_an_ssh_host(
    server: Home, sshd: Sshd, tmp_path: Path
) -> None:
    remote, local = tmp_path / "remote", tmp_path / "local"
    remote.mkdir()
    (remote / "in.txt").write_text("over ssh")
    (remote / "other.txt").write_text("by address")
    strategy = rsync_strategy(sshd)
    by_address = rsync_strategy(sshd, user="", host="")  # the host comes from the path
    transfers = [
        ct.fs.TransferFromRemote(str(remote / "in.txt"), local / "in.txt", strategy=strategy),
        ct.fs.TransferToRemote(local / "out.txt", str(remote / "new" / "out.txt"), strategy),
        ct.fs.FileTransfer(
            f"{sshd.username}@127.0.0.1:{remote}/other.txt",
            local / "other.txt",
            strategy=by_address,
        ),
    ]
    step = ct.electron(upper.function, files=transfers)

    @ct.lattice
    def flow():
        return step()

    logins = sshd.logins()
    result = ct.dispatch_sync(flow)()
    assert result.status == ct.status.COMPLETED, result.error
    assert (remote / "new" / "out.txt").read_text() == "OVER SSH"
    assert (local / "other.txt").read_text() == "by address"
    assert result.result[0] == (str(remote / "in.txt"), str(local / "in.txt"))
    assert sshd.logins() - logins == 3


def test_http_downloads_and_uploads_with_put_and_post(
    server: Home, httpd: Httpd, tmp_path: Path
) -> None:
    (httpd.root / "data.txt").write_text("from the web")
    headers = {"Authorization": "Bearer secret-token"}
    post = HTTP(headers, upload_method="POST")
    transfers = [
        ct.fs.TransferFromRemote(httpd.url("data.txt"), tmp_path / "data.txt"),
        ct.fs.TransferToRemote(tmp_path / "out.txt", httpd.url("put/out.txt")),
        ct.fs.TransferToRemote(tmp_path / "out.txt", httpd.url("post/out.txt"), strategy=post),
    ]
    step = ct.electron(upper.function, files=transfers)

    @ct.lattice
    def flow():
        return step()

    result = ct.dispatch_sync(flow)()
    assert result.status == ct.status.COMPLETED, result.error
    assert result.result[0] == (httpd.url("data.txt"), str(tmp_path / "data.txt"))
    assert (httpd.root / "put" / "out.txt").read_text() == "FROM THE WEB"
    assert (httpd.root / "post" / "out.txt").read_text() == "FROM THE WEB"
    methods = [(r["method"], r["path"]) for r in httpd.requests]
    assert methods == [("GET", "/data.txt"), ("PUT", "/put/out.txt"), ("POST", "/post/out.txt")]
    assert httpd.requests[2]["headers"]["Authorization"] == "Bearer secret-token"


@ct.electron
def must_not_run(files):
    raise AssertionError("the electron ran although its transfer failed")


@ct.electron
def after(x):
    return x


def test_failed_transfers_fail_their_nodes_and_name_file_and_strategy(
    server: Home, httpd: Httpd, sshd: Sshd, tmp_path: Path
) -> None:
    missing = tmp_path / "missing.txt"
    rsync = rsync_strategy(sshd)
    local = ct.electron(must_not_run.function, files=[ct.fs.FileTransfer(missing, tmp_path / "x")])
    web = ct.electron(
        must_not_run.function,
        files=[ct.fs.TransferFromRemote(httpd.url("nowhere.txt"), tmp_path / "y")],
    )
    ssh = ct.electron(
        must_not_run.function,
        files=[ct.fs.TransferFromRemote(str(missing), tmp_path / "z", strategy=rsync)],
    )

    @ct.lattice
    def flow():
        return after(local()), web(), ssh(), after(1)

    result = ct.dispatch_sync(flow)()
    assert result.status == ct.status.FAILED
    nodes = {n["node_id"]: n for n in result.get_all_node_results()}
    errors = [nodes[i]["error"] for i in (0, 2, 3)]
    assert f"File transfer {missing} -> {tmp_path / 'x'} with Shutil() failed" in errors[0]
    assert "FileNotFoundError" in errors[0]
    assert f"{httpd.url('nowhere.txt')} -> {tmp_path / 'y'} with HTTP() failed" in errors[1]
    assert "404 Not Found" in errors[1]
    assert f"127.0.0.1:{missing} -> {tmp_path / 'z'} with Rsync(" in errors[2]
    assert "rsync exited with code" in errors[2]
    assert nodes[1]["status"] == ct.status.NOT_RUN
    assert nodes[4]["status"] == ct.status.COMPLETED
    assert not (tmp_path / "x").exists()


def log_line(log: str, text: str) -> None:
    with open(log, "a") as f:
        f.write(text + "\n")


def check_and_log(log: str, path: str) -> None:
    assert Path(path).read_text() == "from bash\n", "the BEFORE transfer has not run"
    log_line(log, "call_before")


def publish(log: str, produced: str, final_source: str) -> None:
    shutil.copy(produced, final_source)
    log_line(log, "call_after")


@ct.electron
def work(log, files):
    (_, staged), (final_source, _) = files
    log_line(log, "electron")
    Path(staged).with_suffix(".produced").write_text("made by the electron")
    return final_source


def test_setup_runs_in_order_bash_pip_before_transfers_hooks_electron_after_transfers(
    server: Home, tmp_path: Path
) -> None:
    """Each step needs the one before: bash makes the file the BEFORE transfer stages,
    call_before checks it, call_after makes the file the AFTER transfer sends."""
    log = str(tmp_path / "log")
    source, staged = tmp_path / "made-by-bash.txt", tmp_path / "staged.txt"
    produced, final_source = tmp_path / "staged.produced", tmp_path / "final-source.txt"
    step = ct.electron(
        work.function,
        deps_bash=[f"echo 'from bash' > {source}", f"echo bash >> {log}"],
        files=[
            ct.fs.FileTransfer(source, staged),
            ct.fs.FileTransfer(final_source, tmp_path / "final.txt", order="after"),
        ],
        call_before=[ct.DepsCall(check_and_log, args=[log, str(staged)])],
        call_after=[ct.DepsCall(publish, args=[log, str(produced), str(final_source)])],
    )

    @ct.lattice
    def flow(log):
        return step(log)

    result = ct.dispatch_sync(flow)(log)
    assert result.status == ct.status.COMPLETED, result.error
    assert Path(log).read_text().split() == ["bash", "call_before", "electron", "call_after"]
    assert (tmp_path / "final.txt").read_text() == "made by the electron"


def staged_where(files):
    (_, staged), (produced, _) = files
    Path(produced).write_text(Path(staged).read_text() + " and back")
    return os.path.abspath(staged), os.environ.get("SSH_CONNECTION", "")


def test_transfers_run_on_the_executor_in_its_working_directory(
    server: Home, sshd: Sshd, tmp_path: Path
) -> None:
    """On the SSH executor, relative paths are in its remote workdir, inside the session."""
    pytest.importorskip("asyncssh")
    (tmp_path / "in.txt").write_text("there")
    workdir = tmp_path / "remote-work"
    remote = ct.executor.SSHExecutor(**sshd.executor_settings(remote_workdir=str(workdir)))
    step = ct.electron(
        staged_where,
        executor=remote,
        files=[
            ct.fs.FileTransfer(tmp_path / "in.txt", "staged/in.txt"),
            ct.fs.FileTransfer("out.txt", tmp_path / "back.txt", order=ct.fs.Order.AFTER),
        ],
    )

    @ct.lattice
    def flow():
        return step()

    result = ct.dispatch_sync(flow)()
    assert result.status == ct.status.COMPLETED, result.error
    staged, ssh_connection = result.result
    assert Path(staged) == workdir / "staged" / "in.txt"
    assert ssh_connection.endswith(f" {sshd.port}")
    assert (tmp_path / "back.txt").read_text() == "there and back"
