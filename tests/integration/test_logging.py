"""The server's log: structured lines, at the level of ``sdk.log_level`` /
``COVALENT_LOG_LEVEL`` (``info`` by default); dispatches and failed nodes at INFO, node
state changes at DEBUG; libraries held at WARNING."""

from __future__ import annotations

import re

import covalent as ct
from covalent._errors import ServerUnavailableError
from tests.conftest import Home

LINE = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (?P<level>[A-Z]+) (?P<logger>\S+) "
    r"dispatch=(?P<dispatch>\S+) node=(?P<node>\S+) event=(?P<event>\S+) (?P<message>.*)$"
)


@ct.electron
def double(x):
    return 2 * x


@ct.lattice
def pair(x):
    return double(double(x))


@ct.electron
def breaks(x):
    raise ValueError(f"no good: {x}\nsecond line")


@ct.lattice
def half_broken(x):
    return double(x), breaks(x)


@ct.electron(executor="dask")
def on_dask(x):
    return x + 1


@ct.lattice
def via_dask(x):
    return on_dask(x)


def start(home: Home, level: str | None, *flags: str) -> None:
    if level is not None:
        home.env["COVALENT_LOG_LEVEL"] = level
    done = home.run("covalent", "start", *flags)
    assert done.returncode == 0, done.stderr


def log_lines(home: Home) -> list[dict[str, str]]:
    """The structured lines of the server log, each as its fields."""
    text = (home.root / "cache" / "server.log").read_text()
    return [m.groupdict() for m in map(LINE.match, text.splitlines()) if m]


def events_of(lines: list[dict[str, str]], dispatch_id: str) -> list[tuple[str, str, str]]:
    return [(x["level"], x["node"], x["event"]) for x in lines if x["dispatch"] == dispatch_id]


def test_start_d_logs_every_node_change_and_the_dispatch(home: Home) -> None:
    start(home, None, "-d")  # covalent start -d: debug, whatever the config says
    dispatch_id = ct.dispatch_sync(pair)(1).dispatch_id
    home.run("covalent", "stop")  # flushes and closes the log
    events = events_of(log_lines(home), dispatch_id)
    assert ("INFO", "-", "dispatch.submitted") in events
    assert ("INFO", "-", "dispatch.started") in events
    assert events[-1] == ("INFO", "-", "dispatch.finished")
    for node in ("0", "2"):
        node_events = [e for level, n, e in events if n == node]
        assert node_events == ["node.running", "node.completed"], events
    finished = [x for x in log_lines(home) if x["event"] == "dispatch.finished"]
    assert finished[-1]["message"].startswith("COMPLETED in ")


def test_info_from_the_config_file_logs_dispatches_but_not_nodes(home: Home) -> None:
    config = home.root / "config" / "covalent.conf"
    config.write_text(config.read_text() + '\n[sdk]\nlog_level = "info"\n')
    start(home, None)
    dispatch_id = ct.dispatch_sync(pair)(2).dispatch_id
    home.run("covalent", "stop")
    events = events_of(log_lines(home), dispatch_id)
    assert {level for level, _, _ in events} == {"INFO"}
    assert [e for _, _, e in events] == [
        "dispatch.submitted",
        "dispatch.started",
        "dispatch.finished",
    ]
    finished = [x for x in log_lines(home) if x["event"] == "dispatch.finished"]
    assert re.fullmatch(r"COMPLETED in \d+\.\d\d s: 2 nodes, 2 completed", finished[-1]["message"])


def test_the_default_level_names_a_failed_dispatch_and_its_failing_node(home: Home) -> None:
    start(home, None)
    result = ct.dispatch_sync(half_broken)(3)
    assert result.status == ct.status.FAILED
    lines = [x for x in log_lines(home) if x["dispatch"] == result.dispatch_id]
    assert [x["event"] for x in lines] == [
        "dispatch.submitted",
        "dispatch.started",
        "node.failed",
        "dispatch.finished",
    ]
    failed = lines[2]
    assert failed["level"] == "INFO" and failed["node"] == "2"
    assert failed["message"] == "breaks(2) failed: ValueError: no good: 3"
    finished = lines[3]["message"]
    counts = "3 nodes, 1 completed, 1 failed, 1 not_run"
    assert re.fullmatch(r"FAILED in \d+\.\d\d s: " + counts, finished)
    assert any("Uvicorn running" in x["message"] for x in log_lines(home))


def test_warning_keeps_only_the_servers_own_lines(home: Home) -> None:
    start(home, "warning")
    dispatch_id = ct.dispatch_sync(pair)(3).dispatch_id
    assert events_of(log_lines(home), dispatch_id) == []
    assert "Uvicorn running" in home.run("covalent", "logs").stdout


def test_dask_is_held_at_warning_at_the_default_level(home: Home) -> None:
    start(home, None)
    result = ct.dispatch_sync(via_dask)(1)
    assert result.status == ct.status.COMPLETED, result.error
    home.run("covalent", "stop")
    text = (home.root / "cache" / "server.log").read_text()
    assert "Started the local Dask cluster" in text  # covalent's own INFO line
    chatter = [
        line
        for line in text.splitlines()
        if "distributed." in line and " - INFO - " in line or "INFO distributed" in line
    ]
    assert chatter == [], chatter[:5]


def test_an_unknown_level_stops_the_start_with_one_line(home: Home) -> None:
    home.env["COVALENT_LOG_LEVEL"] = "verbose"
    done = home.run("covalent", "start")
    assert done.returncode == ServerUnavailableError.exit_code
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "The log level 'verbose'" in done.stderr and "see `covalent logs`" in done.stderr


def test_a_config_section_of_no_installed_executor_is_warned_of(home: Home) -> None:
    config = home.root / "config" / "covalent.conf"
    config.write_text(config.read_text() + "\n[executors.lcoal]\nworkers = 2\n")
    start(home, None)
    home.run("covalent", "stop")
    text = (home.root / "cache" / "server.log").read_text()
    warned = [line for line in text.splitlines() if "[executors.lcoal]" in line]
    assert len(warned) == 1 and " WARNING " in warned[0], text
    assert "names no installed executor" in warned[0] and "local" in warned[0]
