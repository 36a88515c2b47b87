"""Every built-in executor checks its settings when it is made (issue #13, item 8)."""

from __future__ import annotations

from typing import Any

import pytest

from covalent._errors import ExecutorError, ExecutorSettingError
from covalent.executor.base import BaseExecutor
from covalent.executor.executor_plugins.dask import DaskExecutor
from covalent.executor.executor_plugins.local import LocalExecutor
from covalent.executor.executor_plugins.slurm import SlurmExecutor
from covalent.executor.executor_plugins.ssh import SSHExecutor

BAD: list[tuple[type[BaseExecutor], str, Any, str]] = [
    (LocalExecutor, "workdir", 23, "a path (a string)"),
    (LocalExecutor, "workdir", ["a"], "a path (a string)"),
    (LocalExecutor, "workers", -1, "a whole number, 0 or more"),
    (LocalExecutor, "workers", "eight", "a whole number, 0 or more"),
    (LocalExecutor, "env", ["A=1"], "a dict of environment variables"),
    (LocalExecutor, "create_unique_workdir", "yes", "True or False"),
    (LocalExecutor, "memory_limit", 1.5, "a whole number, 0 or more"),
    (LocalExecutor, "log_stdout", {"f": 1}, "a path (a string)"),
    (DaskExecutor, "threads_per_worker", 0, "a whole number of at least 1"),
    (DaskExecutor, "scheduler_address", 8786, "a string"),
    (SSHExecutor, "port", -22, "a whole number of at least 1"),
    (SSHExecutor, "max_tasks", 0, "a whole number of at least 1"),
    (SSHExecutor, "retry_wait_time", -1, "a number, 0 or more"),
    (SSHExecutor, "hostname", ["h"], "a string"),
    (SlurmExecutor, "options", ["partition"], "a dict with string keys"),
    (SlurmExecutor, "prerun_commands", "module load x", "a list of strings"),
    (SlurmExecutor, "poll_freq", float("nan"), "a number, 0 or more"),
    (SlurmExecutor, "retries", -2, "a whole number, 0 or more"),
]


@pytest.mark.parametrize(("cls", "name", "value", "expected"), BAD)
def test_a_wrong_setting_is_refused_naming_it_its_value_and_what_is_expected(
    cls: type[BaseExecutor], name: str, value: Any, expected: str
) -> None:
    with pytest.raises(ExecutorSettingError) as caught:
        cls(**{name: value})
    message = str(caught.value)
    assert message.startswith(f"{cls.__name__}({name}=")
    assert f"{name} must be {expected}, not {value!r}" in message
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, ExecutorError)


def test_local_executor_workdir_23_makes_no_folder(tmp_path: Any, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ExecutorSettingError, match=r"LocalExecutor\(workdir=23\)"):
        LocalExecutor(workdir=23)  # type: ignore[arg-type]
    assert not (tmp_path / "23").exists()


def test_good_settings_in_their_plain_forms_are_kept() -> None:
    executor = LocalExecutor(workdir="w", workers=2, env={"A": 1}, cache_dir="c", retries=1)
    attributes = executor.to_dict()["attributes"]
    assert attributes["env"] == {"A": "1"} and attributes["workers"] == 2
    assert attributes["cache_dir"] == "c" and attributes["retries"] == 1
    assert LocalExecutor(create_unique_workdir="true").create_unique_workdir is True  # TOML
    assert SSHExecutor(conda_env=None).conda_env == ""
    assert SSHExecutor(port="2222").port == 2222  # from an environment variable
    with pytest.raises(ExecutorSettingError, match="not '-1'"):
        SSHExecutor(port="-1")
