"""Settings across sublattices, run for real two levels deep: electrons that set nothing
use the settings of the sublattice node that runs their lattice, which follows the
parent lattice's (executor, deps, call_before/after, retries, timeout)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import covalent as ct
from tests.conftest import Home

OUTER = ct.executor.LocalExecutor(env={"COVALENT_TEST_WHO": "outer"})
NODE = ct.executor.LocalExecutor(env={"COVALENT_TEST_WHO": "node"})


def stamp() -> str:
    return "hooked"


@ct.electron
def who(tag, stamp=None):
    return f"{os.environ.get('COVALENT_TEST_WHO', 'none')}:{tag}:{stamp}"


@ct.electron
def flaky(path, stamp=None):
    """Fails on its first attempt, succeeds on the second; returns the attempt count."""
    counter = Path(path)
    attempt = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(attempt))
    if attempt == 1:
        raise RuntimeError("first attempt fails")
    return attempt


@ct.electron
def nap(seconds):
    time.sleep(seconds)
    return seconds


@ct.lattice
def inner(folder):
    return who("inner"), flaky(f"{folder}/inner-attempts")


@ct.lattice
def middle(folder):
    return who("middle"), ct.electron(inner)(folder)


def test_settings_reach_two_levels_down(server: Home, tmp_path: Path) -> None:
    log = tmp_path / "after.log"

    def note() -> None:
        with open(log, "a") as f:
            f.write("after\n")

    @ct.lattice(
        executor=OUTER,
        call_before=[ct.DepsCall(stamp, retval_keyword="stamp")],
        call_after=[note],
        deps_bash=[f"echo bash >> {tmp_path}/bash.log"],
        retries=1,
    )
    def outer(folder):
        return who("outer"), ct.electron(middle, executor=NODE)(folder)

    result = ct.dispatch_sync(outer)(str(tmp_path))
    assert result.status == ct.status.COMPLETED, result.error
    assert result.result == (
        "outer:outer:hooked",
        ("node:middle:hooked", ("node:inner:hooked", 2)),  # flaky's retry was inherited
    )
    # four electrons ran, flaky twice: bash before each attempt, call_after once per success
    assert (tmp_path / "bash.log").read_text().split() == ["bash"] * 5
    assert log.read_text().split() == ["after"] * 4


def test_a_timeout_reaches_two_levels_down(server: Home) -> None:
    @ct.lattice
    def sleepy_inner(seconds):
        return nap(seconds)

    @ct.lattice
    def sleepy_middle(seconds):
        return ct.electron(sleepy_inner)(seconds)

    @ct.lattice(timeout=2)
    def sleepy(seconds):
        return ct.electron(sleepy_middle)(seconds)

    result = ct.dispatch_sync(sleepy)(120)
    assert result.status == ct.status.FAILED
    middle_node = result.get_node_result(0)["sublattice_result"]
    inner_result = middle_node.get_node_result(0)["sublattice_result"]
    napped = inner_result.get_node_result(0)
    assert napped["status"] == ct.status.FAILED
    assert "2" in napped["error"] and "timeout" in napped["error"].lower()
