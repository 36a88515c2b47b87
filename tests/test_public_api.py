"""Every public claim has a test: a simple, honest check that some test mentions it.

- each name in ``covalent.__all__`` (as ``ct.<name>`` or ``covalent.<name>``) and each
  class of ``ct.executor`` that covalent ships (by its name);
- each row of the README's tables: every command and option of the CLI table (quoted as
  a test passes it, ``"redispatch"``, ``"--reuse"``), every executor of the executors
  table with the settings it names, every example of the features table.

A mention is not proof that the test would fail without the thing, but a new public name
or README row that no test mentions fails here, so CI asks for its test. Mentions in
this file do not count.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

import covalent
from covalent.executor import plugins
from tests.conftest import REPO

TESTS = {
    path: path.read_text()
    for path in sorted((REPO / "tests").rglob("*.py"))
    if path != Path(__file__).resolve()
}
README = (REPO / "README.md").read_text()


def mentioned(pattern: str) -> list[str]:
    """The test files (relative paths) in which ``pattern`` (a regex) occurs."""
    found = re.compile(pattern)
    return [str(p.relative_to(REPO)) for p, text in TESTS.items() if found.search(text)]


def section(title: str, end: str) -> str:
    """The README from the heading ``title`` to the text ``end``."""
    start = README.index(title)
    return README[start : README.index(end, start)]


def rows(text: str) -> list[list[str]]:
    """The cells of a markdown table's body rows (``\\|`` stays inside a cell)."""
    table = [line for line in text.splitlines() if line.startswith("|")]
    return [
        [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", r)[1:-1]] for r in table[2:]
    ]


# public names


def builtin_executor_classes() -> list[str]:
    shipped = {
        plugin.cls.__name__
        for plugin in plugins.discover().values()
        if plugin.cls.__module__.startswith("covalent.")
    }
    return sorted(shipped | set(covalent.executor.__all__))


@pytest.mark.parametrize("name", covalent.__all__)
def test_every_public_name_is_used_by_a_test(name: str) -> None:
    pattern = rf"\b(?:ct|covalent)\.{re.escape(name)}\b"
    assert mentioned(pattern), f"no test uses ct.{name}; write one that fails without it"


@pytest.mark.parametrize("name", builtin_executor_classes())
def test_every_executor_class_is_used_by_a_test(name: str) -> None:
    assert mentioned(rf"\b{name}\b"), f"no test uses ct.executor.{name}"


def test_the_walk_sees_the_executors_that_ship() -> None:
    assert {"LocalExecutor", "DaskExecutor", "RayExecutor", "SSHExecutor", "SlurmExecutor"} <= set(
        builtin_executor_classes()
    )


# the README's tables


def cli_rows() -> list[str]:
    """Each ``covalent ...`` form in the first column of the README's CLI table."""
    forms = []
    for cells in rows(section("## The CLI", "Every command that takes")):
        forms += [f"covalent {c}" for c in re.findall(r"`covalent ([^`]*)`", cells[0])]
        forms += [f"covalent {c}" for c in re.findall(r"`(--[\w-]+)`", cells[0])]
    return forms


def options(form: str) -> list[list[str]]:
    """The options of a CLI form, each with its spellings: ``[-p/--port N]`` gives
    ``["-p", "--port"]``; ``[--status|--info]`` gives one entry per alternative."""
    found = []
    for group in re.findall(r"\[([^\]]*)\]", form) + re.findall(r"^covalent (--[\w-]+)$", form):
        for alternative in group.split("|"):
            spellings = re.findall(r"(?<![\w-])(--?[a-zA-Z][\w-]*)", alternative)
            if spellings:
                found.append(spellings)
    return found


@pytest.mark.parametrize("form", cli_rows())
def test_every_command_of_the_readme_cli_table_is_run_by_a_test(form: str) -> None:
    words = re.match(r"covalent ((?:[a-z][a-z-]* ?)*)", form)
    command = words.group(1).split() if words else []
    if command:
        quoted = r",\s*".join(f'"{word}"' for word in command)
        assert mentioned(quoted), f"no test runs `covalent {' '.join(command)}`"
    for spellings in options(form):
        either = "|".join(re.escape(f'"{s}"') for s in spellings)
        assert mentioned(either), f"no test passes {'/'.join(spellings)} ({form})"


def test_the_cli_walk_reads_the_table() -> None:
    forms = cli_rows()
    assert "covalent redispatch ID [--reuse] [--failed-only]" in forms
    assert ["--reuse"] in options("covalent redispatch ID [--reuse] [--failed-only]")
    assert len(forms) >= 18


def executor_rows() -> list[tuple[str, str, list[str]]]:
    """(class, short name, settings named) of each row of the README's executors table;
    a setting is a word in backquotes (``address="..."``, ``num_cpus``) that the class's
    constructor takes."""
    classes = {plugin.cls.__name__: plugin.cls for plugin in plugins.discover().values()}
    found = []
    for cells in rows(section("## Running electrons elsewhere", "Settings for an executor")):
        (cls,), (short,) = re.findall(r"`(\w+)`", cells[0]), re.findall(r'`"(\w+)"`', cells[0])
        taken = inspect.signature(classes[cls]).parameters
        named = re.findall(r"`(\w+)\b", " ".join(cells[1:3]))
        found.append((cls, short, [word for word in dict.fromkeys(named) if word in taken]))
    return found


@pytest.mark.parametrize(("cls", "short", "settings"), executor_rows())
def test_every_executor_of_the_readme_table_is_tested(
    cls: str, short: str, settings: list[str]
) -> None:
    assert mentioned(rf"\b{cls}\b"), f"no test uses {cls}"
    assert mentioned(rf'executor="{short}"|"{short}"'), f'no test names the executor "{short}"'
    for setting in settings:
        assert mentioned(rf"\b{setting}\b\s*="), f"no test sets {cls}'s {setting}"


def test_the_executor_walk_reads_the_table() -> None:
    table = {cls: (short, settings) for cls, short, settings in executor_rows()}
    assert set(table) == {
        "LocalExecutor",
        "DaskExecutor",
        "RayExecutor",
        "SSHExecutor",
        "SlurmExecutor",
    }
    assert table["RayExecutor"][0] == "ray"
    assert {"address", "num_cpus", "runtime_env"} <= set(table["RayExecutor"][1])


def feature_examples() -> list[str]:
    return re.findall(r"\]\(examples/([^)]+)\)", section("## Features", "Coming from the original"))


@pytest.mark.parametrize("example", feature_examples())
def test_every_example_of_the_readme_features_table_is_run_by_a_test(example: str) -> None:
    assert (REPO / "examples" / example).exists()
    assert mentioned(re.escape(Path(example).name)), f"no test runs examples/{example}"


def test_the_features_walk_reads_the_table() -> None:
    assert {"sublattice.py", "redispatch.py", "caching.py", "mixed_executors.py"} <= set(
        feature_examples()
    )
