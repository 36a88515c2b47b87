"""Leptons without a server: called outside a lattice they run at once, with real bash."""

from __future__ import annotations

import shutil
import subprocess
from ctypes import POINTER, c_double, c_int32
from pathlib import Path

import pytest

import covalent as ct
from covalent._errors import WorkflowError
from covalent._workflow.clepton import CLeptonError
from covalent._workflow.lepton import LeptonError, fill


def test_fill_replaces_only_placeholders_that_name_arguments() -> None:
    command = "awk '{print $1}' {0} ${HOME} {name} {missing} {5}"
    assert fill(command, ["f.txt"], {"name": 7}) == "awk '{print $1}' f.txt ${HOME} 7 {missing} {5}"


def test_stdout_without_trailing_newlines_is_the_value(capsys: pytest.CaptureFixture[str]) -> None:
    lepton = ct.Lepton(language="bash", command="printf 'a\\nb\\n\\n'; echo note >&2")
    assert lepton() == "a\nb"
    assert capsys.readouterr() == ("a\nb\n\n", "note\n")
    assert isinstance(lepton, ct.Electron) and lepton.name == "bash"


def test_named_outputs_one_value_or_a_tuple() -> None:
    one = ct.leptons.bash("X=$(( {a} + 1 ))", named_outputs=["X"])
    assert one(a=1) == "2"
    two = ct.leptons.bash('set -u; X="a b"; exit 0', named_outputs=["X", "UNSET"])
    assert two() == ("a b", "")


def test_a_non_zero_exit_raises_with_stderr() -> None:
    with pytest.raises(LeptonError, match=r"exited with status 4: .*\nno such thing"):
        ct.leptons.bash("echo 'no such thing' >&2; exit 4")()


def test_a_command_that_replaces_the_exit_trap_is_reported() -> None:
    with pytest.raises(LeptonError, match="replaced the EXIT trap"):
        ct.leptons.bash("trap 'true' EXIT; X=1", named_outputs=["X"])()


def test_the_decorator_forms() -> None:
    @ct.leptons.bash
    def echo(word):
        return f"echo {word}"

    @ct.leptons.bash(named_outputs=["A", "B"], display_name="pair")
    def pair():
        return "A=1; B=2"

    assert (echo("hi"), echo.name) == ("hi", "echo")
    assert (pair(), pair.name) == (("1", "2"), "pair")


def test_python_leptons_and_unsupported_languages() -> None:
    dumps = ct.Lepton("python", library_name="json", function_name="dumps")
    assert dumps([1]) == "[1]" and dumps.name == "dumps"
    with pytest.raises(WorkflowError, match="bash, shell, python, C"):
        ct.Lepton(language="fortran", library_name="libm.so", function_name="sqrt")
    with pytest.raises(WorkflowError, match="C lepton needs library_name"):
        ct.Lepton(language="C", function_name="sqrt")
    with pytest.raises(WorkflowError, match="needs command"):
        ct.Lepton(language="bash")
    with pytest.raises(WorkflowError, match="shell variable name"):
        ct.Lepton(language="bash", command="true", named_outputs=["not-a-name"])


def test_bash_argtypes_type_the_named_outputs_and_read_inputs_back() -> None:
    multiply = ct.Lepton(
        language="bash",
        command="product=$(({num_1} * {num_2}))",
        argtypes=[(int, ct.Lepton.INPUT_OUTPUT), (int, ct.Lepton.OUTPUT)],
        named_outputs=["num_1", "num_2", "product"],
    )
    assert multiply(num_1=7, num_2=8) == (7, 8, 56)
    full = ct.Lepton(
        language="bash",
        command="num_1=$((num_1 + 1)); ratio=$(echo 'scale=1; {num_2} / 2' | bc)",
        argtypes=[(int, ct.Lepton.INPUT_OUTPUT), (int, ct.Lepton.INPUT), (float, ct.Lepton.OUTPUT)],
        named_outputs=["num_1", "ratio"],
    )
    if shutil.which("bc"):
        assert full(num_1=1, num_2=5) == (2, 2.5)
    words = ct.Lepton(
        language="bash", command="w='a b'", named_outputs=["w"], argtypes=[(int, ct.Lepton.OUTPUT)]
    )
    with pytest.raises(LeptonError, match="w='a b' cannot be read as int"):
        words()


def test_lepton_argtypes_directions_are_checked() -> None:
    with pytest.raises(WorkflowError, match="'SIDEWAYS' is not one of"):
        ct.Lepton(language="bash", command="true", argtypes=[(int, "SIDEWAYS")])
    with pytest.raises(WorkflowError, match="must be a POINTER type"):
        ct.Lepton(
            language="C",
            library_name="x.so",
            function_name="f",
            argtypes=[(c_int32, ct.Lepton.OUTPUT)],
        )


C_SOURCE = """
void test_entry(int x, int *y, int *z) { *y += x; *z = 5; }
void scale(double factor, double *value) { *value *= factor; }
"""


def compile_library(folder: Path) -> Path:
    """A shared library built with gcc from ``C_SOURCE``."""
    source, library = folder / "test.c", folder / "libtest.so"
    source.write_text(C_SOURCE)
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(library), str(source)], check=True)
    return library


def entry_lepton(library: Path) -> ct.Lepton:
    """The C lepton of ``test_entry`` (``*y += x; *z = 5``) in ``library``."""
    return ct.Lepton(
        language="C",
        library_name=str(library),
        function_name="test_entry",
        argtypes=[
            (c_int32, ct.Lepton.INPUT),
            (POINTER(c_int32), ct.Lepton.INPUT_OUTPUT),
            (POINTER(c_int32), ct.Lepton.OUTPUT),
        ],
    )


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
def test_a_c_lepton_calls_the_library_and_returns_its_outputs(tmp_path: Path) -> None:
    library = compile_library(tmp_path)
    entry = entry_lepton(library)
    assert entry(1, 2) == (3, 5)
    assert entry.name == "test_entry"
    scale = ct.Lepton(
        language="C",
        library_name=str(library),
        function_name="scale",
        argtypes=[c_double, (POINTER(c_double), ct.Lepton.INPUT_OUTPUT)],
    )
    assert scale(2.5, 4.0) == 10.0
    with pytest.raises(CLeptonError, match="takes 2 inputs"):
        entry(1)
    missing = ct.Lepton(language="C", library_name=str(library), function_name="nope")
    with pytest.raises(CLeptonError, match="no function 'nope'"):
        missing()
    absent = ct.Lepton(language="C", library_name=str(tmp_path / "none.so"), function_name="f")
    with pytest.raises(CLeptonError, match="cannot load"):
        absent()
