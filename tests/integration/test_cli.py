"""The dispatch commands of the CLI (ls, show, logs, cancel, rm) in text and ``--json``,
their exit codes, shell completion, and errors that print one line and no traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import covalent as ct
from covalent._client.http import client_for
from covalent._errors import (
    BadRequestError,
    ConfigError,
    DispatchNotFoundError,
    ExecutorError,
    ServerError,
    ServerUnavailableError,
    WorkflowError,
)
from tests.conftest import Home, free_port, wait_for

UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"


@ct.electron
def chatty(x):
    print(f"out {x}")
    print(f"err {x}", file=sys.stderr)
    return x * 10


@ct.electron
def fails(x):
    raise ValueError(f"bad {x}")


@ct.electron
def gate(path):
    import os
    import time

    deadline = time.monotonic() + 300
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.02)
    return "released"


@ct.lattice
def talk(x):
    return chatty(x)


@ct.lattice
def broken(x):
    return fails(x)


@ct.lattice
def gated(path, other):
    return [gate(path), gate(other)]


def cli(home: Home, *args: str, input: str | None = None, code: int = 0) -> str:
    """Run ``covalent *args``; check its exit code and that no traceback shows; its stdout."""
    done = home.run("covalent", *args, input=input)
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr  # (stdout may show a failed electron's)
    return done.stdout


def cli_json(home: Home, *args: str) -> dict:
    return json.loads(cli(home, *args, "--json"))


def error_line(home: Home, *args: str, code: int) -> str:
    """The one line an expected error prints (on stderr), checking its exit code."""
    done = home.run("covalent", *args)
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), done.stderr
    return lines[0]


# ls


def test_ls_lists_newest_first_in_text_and_json(server: Home) -> None:
    first = ct.dispatch_sync(talk)(1).dispatch_id
    second = ct.dispatch_sync(broken)(2).dispatch_id
    listed = cli_json(server, "ls", "--limit", "1000")
    ids = [d["dispatch_id"] for d in listed["dispatches"]]
    assert ids.index(second) < ids.index(first)
    entry = next(d for d in listed["dispatches"] if d["dispatch_id"] == second)
    assert entry["status"] == "FAILED" and entry["lattice_name"] == "broken"
    assert entry["node_count"] == 1 and entry["start_time"].endswith("+00:00")  # electrons only
    assert listed["total"] >= 2
    text = cli(server, "ls", "--limit", "1000")
    row = next(line for line in text.splitlines() if second in line)
    assert row.split()[1:3] == ["FAILED", "broken"]


def test_ls_filters_by_status_and_limits(server: Home) -> None:
    ct.dispatch_sync(broken)(3)
    ct.dispatch_sync(talk)(3)
    failed = cli_json(server, "ls", "--status", "failed", "--limit", "1000")["dispatches"]
    assert failed and {d["status"] for d in failed} == {"FAILED"}
    assert len(cli_json(server, "ls", "--limit", "1")["dispatches"]) == 1


# show


def test_show_prints_the_result_block_then_the_nodes(server: Home) -> None:
    result = ct.dispatch_sync(talk)(4)
    text = cli(server, "show", result.dispatch_id)
    block, _, table = text.partition("\nNodes\n")
    assert block.strip() == str(result).strip()
    rows = {line.split()[0]: line.split() for line in table.splitlines() if "(" in line}
    assert rows["chatty(0)"][1:3] == ["COMPLETED", "local"]
    assert rows["chatty(0)"][3:5] == [rows["chatty(0)"][3], "s"]  # a duration in seconds
    assert rows[":parameter:4(1)"][1] == "COMPLETED"


def _named(name: str, function):
    function.__name__ = function.__qualname__ = name
    return function


def test_names_with_markup_or_escape_sequences_are_shown_as_text(server: Home) -> None:
    # a lattice named "[/]" made `covalent ls` fail for everyone; an ESC drove the terminal
    bad = "evil[/]\x1b[31mred"
    step = ct.electron(_named(bad + "_node", lambda x: x))
    flow = ct.lattice(_named(bad, lambda x: step(x)))
    result = ct.dispatch_sync(flow)(1)
    assert result.status == ct.status.COMPLETED
    listed = cli(server, "ls", "--name", "evil")
    assert "evil[/]\\x1b[31mred" in listed and "\x1b" not in listed
    shown = cli(server, "show", result.dispatch_id)
    assert "evil[/]\\x1b[31mred_node(0)" in shown and "\x1b" not in shown


def test_show_json_has_the_result_and_each_node(server: Home) -> None:
    result = ct.dispatch_sync(broken)(5)
    shown = cli_json(server, "show", result.dispatch_id)
    assert shown["dispatch_id"] == result.dispatch_id
    assert shown["status"] == "FAILED" and shown["result"] is None
    assert "ValueError: bad 5" in shown["error"]
    node = shown["nodes"][0]
    assert (node["name"], node["status"], node["executor"]) == ("fails", "FAILED", "local")
    assert node["duration"] >= 0 and "Traceback" in node["error"]
    assert shown["nodes"][1]["output"] == "5"
    completed = cli_json(server, "show", ct.dispatch_sync(talk)(6).dispatch_id)
    assert completed["result"] == "60"


# logs


def test_logs_of_a_node_and_of_every_node(server: Home) -> None:
    result = ct.dispatch_sync(talk)(7)
    one = server.run("covalent", "logs", result.dispatch_id, "0")
    assert (one.returncode, one.stdout, one.stderr) == (0, "out 7\n", "err 7\n")
    every = cli(server, "logs", result.dispatch_id)
    assert every.splitlines() == [
        "==> chatty(0) stdout <==",
        "out 7",
        "==> chatty(0) stderr <==",
        "err 7",
    ]
    as_json = cli_json(server, "logs", result.dispatch_id, "0")
    assert as_json["nodes"] == [
        {
            "node_id": 0,
            "name": "chatty",
            "status": "COMPLETED",
            "stdout": "out 7\n",
            "stderr": "err 7\n",
        }
    ]


def test_logs_without_an_id_prints_the_server_log_as_before(server: Home) -> None:
    log = (server.root / "cache" / "server.log").read_bytes().decode()
    printed = cli(server, "logs")
    assert "Uvicorn running" in printed
    assert printed.startswith(log[:200])


def test_logs_of_an_unknown_node_is_a_bad_request(server: Home) -> None:
    result = ct.dispatch_sync(talk)(8)
    line = error_line(server, "logs", result.dispatch_id, "99", code=BadRequestError.exit_code)
    assert f"has no node 99; `covalent show {result.dispatch_id}`" in line


# cancel and rm


def test_cancel_nodes_then_the_dispatch(server: Home, tmp_path: Path) -> None:
    dispatch_id = ct.dispatch(gated)(str(tmp_path / "never"), str(tmp_path / "never2"))
    wait_for(
        lambda: ct.get_result(dispatch_id).get_node_result(0)["status"] == ct.status.RUNNING,
        what="the gate to run",
    )
    answer = cli_json(server, "cancel", dispatch_id, "0")
    assert answer == {"dispatch_id": dispatch_id, "task_ids": [0], "status": "cancel requested"}
    wait_for(
        lambda: ct.get_result(dispatch_id).get_node_result(0)["status"] == ct.status.CANCELLED,
        what="node 0 to be cancelled",
    )
    text = cli(server, "cancel", dispatch_id)
    assert text.strip() == f"Cancellation of dispatch {dispatch_id} requested."
    result = ct.get_result(dispatch_id, wait=True)
    assert result.status == ct.status.CANCELLED


def test_rm_asks_first_then_deletes(server: Home) -> None:
    dispatch_id = ct.dispatch_sync(talk)(9).dispatch_id
    refused = server.run("covalent", "rm", dispatch_id, input="n\n")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "Delete dispatch" in refused.stderr
    assert ct.get_result(dispatch_id).status == ct.status.COMPLETED
    assert cli(server, "rm", dispatch_id, input="y\n").strip() == (
        f"Dispatch {dispatch_id} has been deleted."
    )
    error_line(server, "show", dispatch_id, code=DispatchNotFoundError.exit_code)
    other = ct.dispatch_sync(talk)(10).dispatch_id
    assert cli_json(server, "rm", "-y", other) == {"deleted": [other]}


def test_rm_of_a_running_dispatch_says_to_cancel_it(server: Home, tmp_path: Path) -> None:
    release = tmp_path / "release"
    dispatch_id = ct.dispatch(gated)(str(release), str(release))
    try:
        line = error_line(server, "rm", "-y", dispatch_id, code=BadRequestError.exit_code)
        assert "cancel it first" in line
    finally:
        release.touch()
    ct.get_result(dispatch_id, wait=True)


# errors and exit codes


def test_unknown_ids_exit_6_with_one_line(server: Home) -> None:
    for args in (
        ["show", UNKNOWN_ID],
        ["logs", UNKNOWN_ID],
        ["cancel", UNKNOWN_ID],
        ["rm", "-y", UNKNOWN_ID],
    ):
        line = error_line(server, *args, code=DispatchNotFoundError.exit_code)
        assert f"No dispatch with id '{UNKNOWN_ID}'" in line and "`covalent ls`" in line


def test_server_down_exits_7_with_one_line(home: Home) -> None:
    for args in (["ls"], ["show", UNKNOWN_ID], ["logs", UNKNOWN_ID], ["cancel", UNKNOWN_ID]):
        line = error_line(home, *args, code=ServerUnavailableError.exit_code)
        assert f"No covalent server answers at {home.url}; start one with `covalent start`" in line


def test_bad_arguments_exit_2_with_usage(server: Home) -> None:
    for args in (["ls", "--limit", "0"], ["logs", UNKNOWN_ID, "first"], ["show"], ["nope"]):
        done = server.run("covalent", *args)
        assert done.returncode == 2, (args, done.stderr)
        assert "Usage: " in done.stderr and "Traceback" not in done.stderr


def test_bad_status_is_a_bad_request(server: Home) -> None:
    line = error_line(server, "ls", "--status", "DONE", code=BadRequestError.exit_code)
    assert "Unknown status 'DONE'; use one of" in line


def test_bad_config_exits_3(home: Home) -> None:
    (home.root / "config" / "covalent.conf").write_text("[dispatcher\nport = 1\n")
    line = error_line(home, "ls", code=ConfigError.exit_code)
    assert "is not valid TOML" in line and "fix or delete it" in line


def test_errors_raised_in_practice_are_one_line_saying_what_to_do(server: Home) -> None:
    nobody = f"http://localhost:{free_port()}"

    @ct.lattice
    def needs(a):
        return chatty(a)

    @ct.electron(executor="no-such-executor")
    def nowhere(x):
        return x

    @ct.lattice
    def elsewhere(x):
        return nowhere(x)

    cases: list[tuple[type[Exception], object, str]] = [
        (DispatchNotFoundError, lambda: ct.get_result(UNKNOWN_ID), "`covalent ls` lists them"),
        (WorkflowError, lambda: ct.dispatch(needs)(), "do not fit lattice 'needs(a)'"),
        (ExecutorError, lambda: ct.dispatch(elsewhere)(1), "the installed executors are"),
        (ConfigError, lambda: ct.get_config("sdk.nope"), "`covalent config` prints every key"),
        (
            ServerUnavailableError,
            lambda: ct.get_result(UNKNOWN_ID, dispatcher_addr=nobody),
            "start one with `covalent start`",
        ),
    ]
    for kind, call, advice in cases:
        with pytest.raises(kind) as caught:
            call()
        message = str(caught.value)
        assert "\n" not in message and advice in message, message


def test_server_errors_read_as_one_line(server: Home) -> None:
    client = client_for(server.url)
    with pytest.raises(ServerError) as caught:
        client.request("GET", "/dispatches/x/nothing-here")
    message = str(caught.value)
    assert "\n" not in message and "answered 404" in message and "`covalent logs`" in message


# completion and version


def test_version(server: Home) -> None:
    assert cli(server, "--version").strip() == f"covalent {ct.__version__}"


def as_installed(home: Home, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``covalent *args`` named as the console script is (completion keys on the name)."""
    code = "import sys; sys.argv[0] = 'covalent'; from covalent._cli.main import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        env={**os.environ, **home.env, **env},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=home.root,
    )


def completions(home: Home, words: str) -> list[str]:
    done = as_installed(
        home,
        _COVALENT_COMPLETE="complete_bash",
        COMP_WORDS=words,
        COMP_CWORD=str(len(words.split()) - 1),
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_shell_completion_script_and_completions(server: Home) -> None:
    script = as_installed(server, "--show-completion", "bash")
    assert script.returncode == 0, script.stderr
    assert "_COVALENT_COMPLETE=complete_bash" in script.stdout
    assert {"show", "start", "status", "stop"} <= set(completions(server, "covalent s"))
    assert completions(server, "covalent ls --status FA") == ["FAILED"]
    dispatch_id = ct.dispatch_sync(talk)(11).dispatch_id
    assert dispatch_id in completions(server, f"covalent show {dispatch_id[:6]}")


def test_install_completion_writes_the_script(home: Home) -> None:
    done = as_installed(home, "--install-completion", "bash")
    assert done.returncode == 0, done.stderr
    installed = home.root / ".bash_completions" / "covalent.sh"
    assert "_COVALENT_COMPLETE=complete_bash" in installed.read_text()
    assert str(installed) in (home.root / ".bashrc").read_text()
