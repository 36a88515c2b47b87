"""The user's own modules reach the worker, and objects of their classes come back as
the client's own class: a script beside its (not installed) modules, run as users run
it, in its own process, against a real server whose workers cannot import them."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

from tests.conftest import REPO, Home

EXAMPLE = REPO / "examples" / "helper_modules"
DEADLINE = 300.0

READER = '''
"""Reads a dispatch's result in a process of its own, with the project's lib or without."""
import json, os, sys

if sys.argv[2] == "with-lib":
    sys.path.insert(0, sys.argv[3])
    from geometry import Point
else:
    Point = None

import covalent as ct

total, size, big = ct.get_result(sys.argv[1], wait=True).result
print(json.dumps({"module": type(big).__module__, "own_class": type(big) is Point,
                  "norm2": big.norm2(), "total": total}))
'''


def run(home: Home, *args: str) -> str:
    done = home.run("python", *args, timeout=DEADLINE)
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    return done.stdout


def lines(output: str) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in output.splitlines() if ": " in line)


def test_the_helper_modules_example_and_its_results_elsewhere(home: Home, tmp_path: Path) -> None:
    out = lines(run(home, str(EXAMPLE / "flow.py")))
    assert out["status"] == "COMPLETED"
    assert (out["total"], out["norm2"], out["scaled"]) == ("60", "32", "Point(40, 40)")
    assert out["a Point of this script"] == "True"

    reader = tmp_path / "reader.py"
    reader.write_text(READER)
    dispatch_id = out["dispatch id"]
    mine = json.loads(run(home, str(reader), dispatch_id, "with-lib", str(EXAMPLE / "lib")))
    assert mine == {"module": "geometry.shapes", "own_class": True, "norm2": 3200, "total": 60}
    # a process that cannot import geometry still reads the result, from the shipped source
    other = json.loads(run(home, str(reader), dispatch_id, "without"))
    assert other == {"module": "geometry.shapes", "own_class": False, "norm2": 3200, "total": 60}


def test_a_changed_module_reaches_workers_that_ran_the_old_one(home: Home, tmp_path: Path) -> None:
    config = home.root / "config" / "covalent.conf"
    config.write_text(config.read_text() + "\n[executors.local]\nworkers = 1\n")  # one worker
    project = tmp_path / "project"
    shutil.copytree(EXAMPLE, project)
    assert lines(run(home, str(project / "flow.py")))["total"] == "60"
    (project / "lib" / "weights.py").write_text("WEIGHT = 100\n")
    assert lines(run(home, str(project / "flow.py")))["total"] == "600"


def test_deps_module_sends_a_module_the_code_does_not_name(home: Home, tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "plugin_impl.py").write_text("def run():\n    return 'plugin ran'\n")
    script = tmp_path / "uses_plugin.py"
    script.write_text(
        textwrap.dedent(
            """
            import importlib, os, sys
            sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
            import covalent as ct

            NAME = "plugin_" + "impl"  # named nowhere as an import

            @ct.electron(call_before=[ct.DepsModule(NAME)])
            def with_deps():
                return importlib.import_module(NAME).run()

            @ct.electron
            def without():
                return importlib.import_module(NAME).run()

            @ct.lattice
            def flow():
                return with_deps()

            @ct.lattice
            def bare():
                return without()

            failed = ct.dispatch_sync(bare)()  # first: no worker has imported it yet
            print("without:", failed.status, "ModuleNotFoundError" in (failed.error or ""))
            print("with:", ct.dispatch_sync(flow)().result)
            """
        )
    )
    out = lines(run(home, str(script)))
    assert out["with"] == "plugin ran"
    assert out["without"] == "FAILED True"


SUBLATTICE_SCRIPT = """
import sys
sys.path.insert(0, {lib!r})
import covalent as ct
import helpers

@ct.electron
def weighted(values):
    return helpers.total(values)

@ct.lattice
def inner(values):
    return weighted(values), helpers.scaled(helpers.make_point(1, 2), 3)

@ct.lattice
def outer(values):
    return ct.electron(inner)(values)

result = ct.dispatch_sync(outer)([1, 2])
total, point = result.result
print("status:", result.status)
print("total:", total)
print("point:", repr(point), type(point).__module__)
"""


def test_modules_reach_the_electrons_of_a_sublattice(home: Home, tmp_path: Path) -> None:
    script = tmp_path / "with_sublattice.py"
    script.write_text(SUBLATTICE_SCRIPT.format(lib=str(EXAMPLE / "lib")))
    out = lines(run(home, str(script)))
    assert out["status"] == "COMPLETED"
    assert out["total"] == "30"  # helpers.total imports weights on the worker, at run time
    assert out["point"] == "Point(3, 6) geometry.shapes"
