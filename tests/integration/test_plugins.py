"""Executor plugins end to end: a package of its own, the plugin folder, the config, errors.

The package in ``tests/plugin_package`` (``covalent-echo-plugin``) is installed like any
third-party plugin (``scripts/test.sh`` does it) and found through its entry points:
``echo`` (``EchoExecutor``, a synchronous ``run``) and ``async_echo``
(``AsyncEchoExecutor``, an ``async`` ``run``). Given ``record_dir`` they leave one JSON
note per task, which tells which settings ran the task and in which process.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

import covalent as ct
from covalent._errors import ExecutorError
from covalent.executor import plugins
from covalent.executor.testing import ExecutorConformance
from tests.conftest import REPO, Home

if importlib.util.find_spec("covalent_echo_plugin") is None:
    pytest.fail(
        "The example plugin package is not installed; install it with "
        "`python -m pip install ./tests/plugin_package` (scripts/test.sh does).",
        pytrace=False,
    )

from covalent_echo_plugin.async_echo import AsyncEchoExecutor  # noqa: E402
from covalent_echo_plugin.echo import EchoExecutor  # noqa: E402


def notes(folder: Path) -> dict[int, dict[str, Any]]:
    """The plugins' notes in ``folder``, by node id."""
    found = [json.loads(p.read_text()) for p in folder.glob("*.json")]
    return {n["task_metadata"]["node_id"]: n for n in found}


def executors_by_name(result: Any) -> dict[str, str]:
    return {
        n["node_name"]: n["executor"]
        for n in result.get_all_node_results()
        if n["executor"] is not None
    }


# the installed package


def test_installed_plugins_are_in_ct_executor() -> None:
    assert ct.executor.EchoExecutor is EchoExecutor
    assert ct.executor.AsyncEchoExecutor is AsyncEchoExecutor
    assert EchoExecutor().short_name() == "echo"
    assert AsyncEchoExecutor().short_name() == "async_echo"
    found = plugins.discover()
    assert found["echo"].source == "entry point covalent_echo_plugin.echo"
    assert found["echo"].defaults == {"label": "echo", "record_dir": ""}


def test_electrons_run_on_the_plugins_by_instance_and_short_name(
    server: Home, tmp_path: Path
) -> None:
    record = tmp_path / "notes"

    @ct.electron(executor=EchoExecutor(label="instance", record_dir=str(record)))
    def double(x):
        print(f"doubling {x}")
        return 2 * x

    @ct.electron(executor="echo")  # the plugin's defaults: no notes
    def inc(x):
        return x + 1

    @ct.electron(executor=AsyncEchoExecutor(label="async", record_dir=str(record)))
    def negate(x):
        return -x

    @ct.lattice
    def flow(x):
        return negate(inc(double(x)))

    result = ct.dispatch_sync(flow)(5)
    assert result.status == ct.status.COMPLETED, result.error
    assert result.result == -11
    assert executors_by_name(result) == {"double": "echo", "inc": "echo", "negate": "async_echo"}
    nodes = {n["node_name"]: n for n in result.get_all_node_results()}
    assert nodes["double"]["stdout"] == "doubling 5\n"  # run() runs inside the capture
    by_node = notes(record)
    assert set(by_node) == {nodes["double"]["node_id"], nodes["negate"]["node_id"]}
    note = by_node[nodes["double"]["node_id"]]
    assert note["label"] == "instance" and note["function"] == "double"
    assert note["task_metadata"]["dispatch_id"] == result.dispatch_id
    # as in Covalent: the root results folder; the dispatch's own is below it
    assert note["task_metadata"]["results_dir"] == str(Path(result.results_dir).parent)
    assert by_node[nodes["negate"]["node_id"]]["label"] == "async"
    # run() ran in a worker process of the server, never in the server itself
    assert note["pid"] != server.server_pid()


def test_config_section_sets_the_plugins_settings_and_task_policy(
    home: Home, tmp_path: Path
) -> None:
    record, attempts = tmp_path / "notes", tmp_path / "attempts"
    config = home.root / "config" / "covalent.conf"
    config.write_text(
        config.read_text()
        + f'\n[executors.echo]\nlabel = "from config"\nrecord_dir = "{record}"\nretries = 1\n'
    )
    found = plugins.discover()["echo"]
    configured = plugins.instantiate(found.cls, "echo", found.defaults)
    assert configured.to_dict()["attributes"] == {"label": "from config", "record_dir": str(record)}
    assert plugins.task_policy("echo") == {"retries": 1}

    @ct.electron(executor="echo")  # by short name: defaults, then [executors.echo]
    def flaky(path):
        from pathlib import Path

        tries = Path(path)
        tries.write_text(tries.read_text() + "x" if tries.exists() else "x")
        if tries.read_text() == "x":
            raise RuntimeError("first try fails")
        return "second try"

    @ct.electron(executor=EchoExecutor(label="instance", record_dir=str(record)))
    def explicit():  # an instance carries every setting it has: they win over the config
        return "explicit"

    @ct.lattice
    def flow(path):
        return flaky(path), explicit()

    assert home.run("covalent", "start").returncode == 0
    result = ct.dispatch_sync(flow)(str(attempts))
    assert result.status == ct.status.COMPLETED, result.error
    assert result.result == ("second try", "explicit")
    flaky_node = next(n for n in result.get_all_node_results() if n["node_name"] == "flaky")
    assert flaky_node["attempts"] == 2  # two tries: `retries` came from the config
    assert len(flaky_node["retried"]) == 1  # the failed first try
    assert "first try fails" in flaky_node["retried"][0]["error"]
    labels = {n["function"]: n["label"] for n in notes(record).values()}
    assert labels == {"flaky": "from config", "explicit": "instance"}


# the plugin folder (this module is docs/executors.md's one-file example)

FOLDER_PLUGIN = """\
import os

from covalent.executor import AsyncBaseExecutor

EXECUTOR_PLUGIN_NAME = "FolderEchoExecutor"
_EXECUTOR_PLUGIN_DEFAULTS = {"tag": "folder default"}


class FolderEchoExecutor(AsyncBaseExecutor):
    def __init__(self, tag="folder default"):
        self.tag = tag

    async def run(self, function, args, kwargs, task_metadata):
        print(f"[{self.tag}] {function.__name__} in {os.getpid()}")
        return function(*args, **kwargs)
"""


@pytest.fixture
def plugin_folder(home: Home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A plugin folder with a working module and one that fails to import, for the
    server (``home.env``) and for this process alike."""
    folder = tmp_path / "executor_plugins"
    folder.mkdir()
    (folder / "folder_echo.py").write_text(FOLDER_PLUGIN)
    (folder / "broken.py").write_text('raise RuntimeError("broken on purpose")\n')
    home.env["COVALENT_EXECUTOR_DIR"] = str(folder)
    monkeypatch.setenv("COVALENT_EXECUTOR_DIR", str(folder))
    return folder


def test_a_module_that_fails_to_import_is_named_and_the_rest_load(plugin_folder: Path) -> None:
    with pytest.warns(UserWarning) as caught:
        found = plugins.discover()
    messages = [str(w.message) for w in caught]
    assert any(
        "Executor plugin 'broken'" in m
        and str(plugin_folder / "broken.py") in m
        and "RuntimeError: broken on purpose" in m
        for m in messages
    ), messages
    assert {"local", "dask", "ssh", "slurm", "echo", "async_echo", "folder_echo"} <= set(found)
    assert "broken" not in found
    assert found["folder_echo"].source == str(plugin_folder / "folder_echo.py")


def test_a_plugin_folder_module_runs_electrons(home: Home, plugin_folder: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the broken module, checked above
        folder_echo = ct.executor.FolderEchoExecutor

    @ct.electron(executor=folder_echo(tag="instance"))
    def first(x):
        return x * 3

    @ct.electron(executor="folder_echo")
    def second(x):
        return x - 1

    @ct.electron(executor="echo")  # the entry points still load beside the broken module
    def third(x):
        return x * 10

    @ct.lattice
    def flow(x):
        return third(second(first(x)))

    started = home.run("covalent", "start")
    assert started.returncode == 0, started.stderr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = ct.dispatch_sync(flow)(2)
    assert result.status == ct.status.COMPLETED, result.error
    assert result.result == 50
    assert executors_by_name(result) == {
        "first": "folder_echo",
        "second": "folder_echo",
        "third": "echo",
    }
    nodes = {n["node_name"]: n for n in result.get_all_node_results()}
    assert nodes["first"]["stdout"].startswith("[instance] first in ")
    assert nodes["second"]["stdout"].startswith("[folder default] second in ")
    assert "Executor plugin 'broken'" in home.run("covalent", "logs").stdout


def test_the_default_plugin_folder_is_executor_plugins_in_the_config_folder(
    tmp_path: Path,
) -> None:
    """Without COVALENT_EXECUTOR_DIR (nor COVALENT_CONFIG_DIR, XDG_CONFIG_HOME), plugins
    are found in ``~/.config/covalent/executor_plugins``."""
    folder = tmp_path / ".config" / "covalent" / "executor_plugins"
    folder.mkdir(parents=True)
    (folder / "folder_echo.py").write_text(FOLDER_PLUGIN)
    moved = ("COVALENT_CONFIG_DIR", "COVALENT_EXECUTOR_DIR", "XDG_CONFIG_HOME")
    env = {k: v for k, v in os.environ.items() if k not in moved}
    code = (
        "import covalent as ct\n"
        "from covalent.executor import plugins\n"
        "print(plugins.discover()['folder_echo'].source)\n"
        "print(ct.executor.FolderEchoExecutor().short_name())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "HOME": str(tmp_path), "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [str(folder / "folder_echo.py"), "folder_echo"]


# unknown executors


def test_an_unknown_executor_fails_at_dispatch_before_anything_is_sent(home: Home) -> None:
    @ct.electron(executor="no_such_executor")
    def lost(x):
        return x

    @ct.lattice
    def by_name(x):
        return lost(x)

    with pytest.raises(ExecutorError) as by_name_error:
        ct.dispatch(by_name)(1)
    message = str(by_name_error.value)
    assert "Electron lost(0) in lattice 'by_name' uses executor 'no_such_executor'" in message
    assert "async_echo, dask, echo, local, ray, slurm, ssh" in message
    assert home.server_pid() is None  # nothing was sent: no server was even started


# the conformance kit


class TestEchoExecutorConformance(ExecutorConformance):
    @pytest.fixture
    def executor(self, home: Home, tmp_path: Path) -> EchoExecutor:
        self.shared_dir = str(tmp_path)  # the worker runs on this machine
        return EchoExecutor()


class TestAsyncEchoExecutorConformance(ExecutorConformance):
    @pytest.fixture
    def executor(self, home: Home, tmp_path: Path) -> AsyncEchoExecutor:
        self.shared_dir = str(tmp_path)
        return AsyncEchoExecutor()


# the plugin authors' page


def test_the_docs_show_the_example_plugins_as_they_are() -> None:
    """docs/executors.md quotes every file of the example package, and the folder plugin."""
    docs = (REPO / "docs" / "executors.md").read_text()
    quoted = dict(
        re.findall(
            r"^`(tests/plugin_package/[^`]+)`:\n\n```\w+\n(.*?)^```$",
            docs,
            re.MULTILINE | re.DOTALL,
        )
    )
    package = REPO / "tests" / "plugin_package"
    files = {
        str(p.relative_to(REPO)): p.read_text()
        for p in sorted(package.rglob("*"))
        if p.is_file() and p.suffix in (".py", ".toml")
    }
    assert quoted == files
    assert f"```python\n{FOLDER_PLUGIN}```" in docs
