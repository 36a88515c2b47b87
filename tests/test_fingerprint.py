"""Fingerprints: equal code gives equal fingerprints in any process and after a round
trip through pickle; a change in anything an electron calls changes its fingerprint.
And redispatch reuse (pure) compares fingerprints."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import covalent as ct
from covalent._dispatcher.reuse import cache_identity, reusable
from covalent._wire import blobs
from covalent._wire import manifest as manifestmod
from covalent._wire.fingerprint import Fingerprints
from tests.conftest import REPO

SCRIPT = """
import sys
import covalent as ct
from covalent._wire import blobs
from covalent._wire.fingerprint import Fingerprints

def helper(v):
    return v + {step}

class Box:
    KINDS = {{"a", "b", "c"}}
    def size(self):
        return helper(len(self.KINDS))

@ct.electron
def calls_helper(x):
    return helper(x) if x in {{"p", "q", "r", "s"}} else Box().size()

print(Fingerprints().of(calls_helper.function), blobs.digest(blobs.dumps(calls_helper.function)))
"""


def fingerprint_in_a_process(
    tmp_path: Path, step: int, seed: str, blank_lines: int = 0
) -> list[str]:
    script = tmp_path / f"script_{step}_{blank_lines}.py"
    script.write_text("\n" * blank_lines + SCRIPT.format(step=step))
    env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_identical_scripts_give_one_fingerprint_whatever_the_hash_seed(tmp_path: Path) -> None:
    first = fingerprint_in_a_process(tmp_path, 1, "1")
    second = fingerprint_in_a_process(tmp_path, 1, "2")
    moved = fingerprint_in_a_process(tmp_path, 1, "3", blank_lines=5)  # only lines moved
    assert first[0] == second[0] == moved[0]
    assert first[1] != second[1]  # the pickles differ (set order, class ids): why digests failed
    changed = fingerprint_in_a_process(tmp_path, 2, "1")  # helper, a function it calls
    assert changed[0] != first[0]


def helper(v):
    return v + 1


@ct.electron
def calls_helper(x):
    return helper(x)


@ct.lattice
def flow(x):
    return calls_helper(x)


def test_a_round_trip_through_pickle_keeps_the_fingerprint() -> None:
    again = blobs.loads(blobs.dumps(flow)).build_graph(1)
    assert Fingerprints().of(again.nodes[0].function) == Fingerprints().of(calls_helper.function)


def test_modules_are_fingerprinted_by_their_source(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "fp_helpers_mod.py").write_text("def total(xs):\n    return sum(xs)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import fp_helpers_mod

    def uses_module(xs):
        return fp_helpers_mod.total(xs)

    before = Fingerprints().of(uses_module)
    source = tmp_path / "fp_helpers_mod.py"
    source.write_text("def total(xs):\n    return sum(xs) + 1\n")
    os.utime(source, ns=(1, 10**18))  # another modification time, whatever the clock's grain
    assert Fingerprints().of(uses_module) != before
    assert Fingerprints().of(len) == Fingerprints().of(len)  # installed: by name


def manifest_of(lattice: ct.Lattice, *args: object) -> dict:
    return manifestmod.from_graph(lattice.build_graph(*args), args, {}, lattice)[0]


def rows_for(manifest: dict) -> list[dict]:
    return [
        {"node_id": n["id"], "status": "COMPLETED", "output_digest": "d" * 64, "output_repr": "x"}
        for n in manifest["nodes"]
    ]


def test_reuse_compares_fingerprints_and_the_cache_key_uses_them() -> None:
    old = manifest_of(flow, 1)
    again = manifest_of(blobs.loads(blobs.dumps(flow)), 1)  # a redispatch re-traces a copy
    assert sorted(reusable(again, old, rows_for(old))) == [0]
    assert cache_identity(again["nodes"][0]) == (again["nodes"][0]["fingerprint"], None)

    @ct.electron
    def calls_helper(x):  # same name, other code
        return helper(x) * 2

    @ct.lattice
    def flow_changed(x):
        return calls_helper(x)

    assert reusable(manifest_of(flow_changed, 1), old, rows_for(old)) == {}
    legacy = {
        **old,
        "nodes": [{k: v for k, v in n.items() if k != "fingerprint"} for n in old["nodes"]],
    }
    assert sorted(reusable(legacy, legacy, rows_for(legacy))) == [0]


def test_set_parameters_are_compared_by_fingerprint(tmp_path: Path) -> None:
    @ct.lattice
    def takes_set(values):
        return calls_helper(values)

    manifest = manifest_of(takes_set, {"x", "y", "z"})
    parameter = manifest["nodes"][1]
    assert parameter["kind"] == "parameter" and "fingerprint" in parameter
    plain = manifest_of(flow, 1)["nodes"][1]
    assert "fingerprint" not in plain  # an int's pickle is the same everywhere


SCRIPT_CHECK = textwrap.dedent(
    """
    import covalent as ct
    from covalent._wire.fingerprint import Fingerprints
    print(Fingerprints().of({"x", "y", "z", "w"}))
    """
)


def test_set_fingerprints_do_not_follow_the_hash_seed(tmp_path: Path) -> None:
    script = tmp_path / "sets.py"
    script.write_text(SCRIPT_CHECK)
    outputs = set()
    for seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(REPO)}
        done = subprocess.run(
            [sys.executable, str(script)], env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        outputs.add(done.stdout)
    assert len(outputs) == 1


def test_which_parameters_need_a_fingerprint() -> None:
    from covalent._wire.fingerprint import pickle_may_vary

    assert not pickle_may_vary([1, "a", b"b", {"k": (2.5, None)}])
    assert pickle_may_vary([1, {"k": {"a", "b"}}])  # a set: its order follows the hash seed
    assert pickle_may_vary({"box": helper})  # an object (a function, a class instance)
    assert not pickle_may_vary([0] * 10_001 + [{"late"}])  # beyond the budget: digests
    assert Fingerprints().of([{"a": i} for i in range(3)]) == Fingerprints().of(
        [{"a": 0}, {"a": 1}, {"a": 2}]
    )
