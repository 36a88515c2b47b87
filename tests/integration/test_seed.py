"""The seed workflow, end to end, through a real server started on its own."""

from __future__ import annotations

import re

from tests.conftest import REPO, Home

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"


def test_seed_runs_unchanged_and_starts_the_server(home: Home) -> None:
    done = home.run("python", str(REPO / "examples" / "seed.py"))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    dispatch_id = lines[0]
    assert re.fullmatch(UUID, dispatch_id)
    assert lines[1:5] == ["", "Lattice Result", "==============", "status: COMPLETED"]
    assert "result: 4" in lines
    assert "input args: []" in lines
    assert "input kwargs: {'a': 2}" in lines
    assert "error: None" in lines
    assert f"dispatch_id: {dispatch_id}" in lines
    assert f"results_dir: {home.root / 'cache' / 'results' / dispatch_id}" in lines
    assert lines[-5:] == [
        "Node Outputs",
        "------------",
        "identity(0): 2",
        ":parameter:2(1): 2",
        "square(2): 4",
    ]
    assert "started it at" in done.stderr  # auto-start says so on stderr
    status = home.run("covalent", "status")
    assert status.stdout.startswith(f"Covalent server is running at {home.url}.")


def test_seed_times_are_printed_in_order(home: Home) -> None:
    done = home.run("python", str(REPO / "examples" / "seed.py"))
    stamps = dict(
        line.split(": ", 1)
        for line in done.stdout.splitlines()
        if line.endswith(tuple("0123456789")) and line.startswith(("start_time", "end_time"))
    )
    pattern = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}"
    assert re.fullmatch(pattern, stamps["start_time"])
    assert re.fullmatch(pattern, stamps["end_time"])
    assert stamps["start_time"] <= stamps["end_time"]
