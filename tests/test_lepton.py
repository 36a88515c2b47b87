"""Leptons without a server: called outside a lattice they run at once, with real bash."""

from __future__ import annotations

import pytest

import covalent as ct
from covalent._errors import WorkflowError
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
    with pytest.raises(WorkflowError, match="bash, shell, python"):
        ct.Lepton(language="C", library_name="libm.so", function_name="sqrt")
    with pytest.raises(WorkflowError, match="needs command"):
        ct.Lepton(language="bash")
    with pytest.raises(WorkflowError, match="shell variable name"):
        ct.Lepton(language="bash", command="true", named_outputs=["not-a-name"])
