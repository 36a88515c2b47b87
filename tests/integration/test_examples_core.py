"""Each feature's example runs as a user would run it (its own process, auto-started server)."""

from __future__ import annotations

import re

import pytest

from tests.conftest import REPO, Home

EXPECTED = {
    "sublattice.py": ["status: COMPLETED", "result: 10"],
    "redispatch.py": ["first: 45", "second: 9"],
    "caching.py": ["results: 144 144"],
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


REUSED_FROM = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}:0"
"""Where a reused output came from: ``<dispatch_id>:<node_id>`` (``None`` if it ran)."""

LINES = {  # whole lines, as patterns: what a feature that did nothing would not print
    "redispatch.py": [rf"load reused from: {REUSED_FROM}"],
    "caching.py": [rf"second reused: {REUSED_FROM}"],
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs(home: Home, name: str) -> None:
    done = home.run("python", str(REPO / "examples" / name), timeout=300)
    assert done.returncode == 0, done.stderr
    for text in EXPECTED[name]:
        assert text in done.stdout, done.stdout
    for pattern in LINES.get(name, []):
        assert re.search(f"^{pattern}$", done.stdout, re.MULTILINE), done.stdout
