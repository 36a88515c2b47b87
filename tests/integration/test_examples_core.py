"""Each feature's example runs as a user would run it (its own process, auto-started server)."""

from __future__ import annotations

import pytest

from tests.conftest import REPO, Home

EXPECTED = {
    "sublattice.py": ["status: COMPLETED", "result: 10"],
    "redispatch.py": ["first: 45", "second: 9", "load reused from: "],
    "caching.py": ["results: 144 144", "second reused: "],
    "waiting.py": ["lines: ['a', 'b']"],
    "dependencies.py": ["result: hello world (prepared by bash)", "marker after: cleaned up"],
    "retries.py": [
        "status: FAILED",
        "flaky: 'answered on try 3' after 3 attempts",
        "  attempt 1 failed: ConnectionError: try 1: the service did not answer",
        "  attempt 2 failed: ConnectionError: try 2: the service did not answer",
        "too_slow: FAILED - ",
        "timed out: it ran longer than its timeout of 1 s",
        "Where it was when stopped (most recent call first):",
        "in too_slow",
    ],
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs(home: Home, name: str) -> None:
    done = home.run("python", str(REPO / "examples" / name), timeout=300)
    assert done.returncode == 0, done.stderr
    for text in EXPECTED[name]:
        assert text in done.stdout, done.stdout
