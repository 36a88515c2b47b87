"""Leptons through a real server: bash commands as nodes, their output, their failures,
named outputs, the decorator form with file transfers, and python leptons."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import covalent as ct
from tests.conftest import Home
from tests.test_lepton import compile_library, entry_lepton


@ct.electron
def folder_file(folder: str, name: str) -> str:
    return f"{folder}/{name}"


@ct.electron
def joined(*parts):
    return "|".join(str(p) for p in parts)


def test_a_bash_lepton_returns_its_stdout_and_records_stdout_and_stderr(server: Home) -> None:
    greet = ct.Lepton(language="bash", command="echo hello {name}; echo careful >&2")

    @ct.lattice
    def flow(name):
        return greet(name=name)

    result = ct.dispatch_sync(flow)("world")
    assert result.status == ct.status.COMPLETED, result.error
    assert result.result == "hello world"
    node = result.get_node_result(0)
    assert node["node_name"] == "bash"
    assert (node["stdout"], node["stderr"]) == ("hello world\n", "careful\n")


def test_placeholders_take_other_nodes_outputs_and_leave_other_braces(
    server: Home, tmp_path: Path
) -> None:
    count = ct.leptons.bash(
        "printf 'a b\\nc d\\n' > {0}; awk '{print $2}' {0} | grep -c '[bd]'",
        display_name="count_second_words",
    )

    @ct.lattice
    def flow(folder):
        return count(folder_file(folder, "lines.txt"))

    result = ct.dispatch_sync(flow)(str(tmp_path))
    assert result.status == ct.status.COMPLETED, result.error
    assert result.result == "2"
    names = [n["node_name"] for n in result.get_all_node_results()]
    assert "count_second_words" in names
    assert (tmp_path / "lines.txt").read_text() == "a b\nc d\n"


def test_named_outputs_unpack_into_later_electrons(server: Home) -> None:
    double = ct.Lepton(
        language="bash",
        command='DOUBLE=$(( {x} * 2 )); NOTE="two words"; echo computed',
        named_outputs=["DOUBLE", "NOTE"],
    )

    @ct.lattice
    def flow(x):
        value, note = double(x=x)
        return joined(value, note)

    result = ct.dispatch_sync(flow)(21)
    assert result.status == ct.status.COMPLETED, result.error
    assert result.result == "42|two words"
    assert result.get_node_result(0)["stdout"] == "computed\n"


def test_a_failing_command_fails_its_node_with_its_stderr(server: Home) -> None:
    fail = ct.leptons.bash("echo about to fail; echo 'disk is full' >&2; exit 3")

    @ct.lattice
    def flow():
        return joined(fail(), "never")

    result = ct.dispatch_sync(flow)()
    assert result.status == ct.status.FAILED
    node = result.get_node_result(0)
    assert node["status"] == ct.status.FAILED
    assert "LeptonError: The command of lepton bash exited with status 3" in node["error"]
    assert "disk is full" in node["error"]
    assert node["stdout"] == "about to fail\n"
    assert result.get_node_result(1)["status"] == ct.status.NOT_RUN
    assert "bash(0)" in str(result.error)


def test_the_decorator_form_with_file_transfers_and_deps(server: Home, tmp_path: Path) -> None:
    (tmp_path / "input.txt").write_text("one\ntwo\nthree\n")

    @ct.leptons.bash(
        named_outputs=["LINES"],
        files=[ct.fs.FileTransfer(tmp_path / "input.txt", tmp_path / "staged" / "input.txt")],
        deps_bash=f"echo four >> {tmp_path / 'input.txt'}",
    )
    def count_lines(pattern, files):
        return f"LINES=$(grep -c {pattern} {files[0][1]})"

    @ct.lattice
    def flow(pattern):
        return count_lines(pattern)

    result = ct.dispatch_sync(flow)("o")
    assert result.status == ct.status.COMPLETED, result.error
    assert result.result == "3"  # one, two, four
    assert result.get_node_result(0)["node_name"] == "count_lines"


def test_python_leptons_call_a_module_or_file_function(server: Home, tmp_path: Path) -> None:
    helper = tmp_path / "helper.py"
    helper.write_text("def triple(x):\n    print('tripling', x)\n    return 3 * x\n")
    triple = ct.Lepton("python", library_name=str(helper), function_name="triple")
    dumps = ct.Lepton(
        language="python", library_name="json", function_name="dumps", display_name="to_json"
    )

    @ct.lattice
    def flow(x):
        return dumps({"tripled": triple(x)}, sort_keys=True)

    result = ct.dispatch_sync(flow)(5)
    assert result.status == ct.status.COMPLETED, result.error
    assert result.result == '{"tripled": 15}'
    nodes = {n["node_name"]: n for n in result.get_all_node_results()}
    assert nodes["triple"]["stdout"] == "tripling 5\n"
    assert "to_json" in nodes


def test_bash_argtypes_through_a_dispatch(server: Home) -> None:
    multiply = ct.Lepton(
        language="bash",
        command="product=$(({num_1} * {num_2}))",
        argtypes=[(int, ct.Lepton.INPUT_OUTPUT), (int, ct.Lepton.OUTPUT)],
        named_outputs=["num_1", "num_2", "product"],
    )

    @ct.lattice
    def flow(a, b):
        return multiply(num_1=a, num_2=b)

    result = ct.dispatch_sync(flow)(7, 8)
    assert result.status == ct.status.COMPLETED, result.error
    assert result.result == (7, 8, 56)


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
def test_a_c_lepton_through_a_dispatch(server: Home, tmp_path: Path) -> None:
    entry = entry_lepton(compile_library(tmp_path))

    @ct.lattice
    def flow(x, y):
        return entry(x, y)

    result = ct.dispatch_sync(flow)(1, 2)
    assert result.status == ct.status.COMPLETED, result.error
    assert result.result == (3, 5)
    assert result.get_node_result(0)["node_name"] == "test_entry"
