"""Making an executor from its class and settings (covalent/executor/plugins.py), as the
server and the workers do: never from a pickle."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest

from covalent import _config
from covalent._errors import ExecutorError
from covalent.executor import plugins
from covalent.executor.base import AsyncBaseExecutor, BaseExecutor
from covalent.executor.remote import RemoteExecutor
from covalent.executor.stand_in import WorkerExecutor


class Strict(BaseExecutor):
    """Like the original's SSH plugin: required arguments, a Path made in __init__."""

    def __init__(self, username: str, hostname: str, cache_dir: str = "/tmp/x") -> None:
        super().__init__(cache_dir=cache_dir)
        self.username, self.hostname = username, hostname
        self.cache_dir = Path(cache_dir)  # type: ignore[assignment]
        self.poll_freq = 15  # set, not taken


class Forwarding(RemoteExecutor):
    """Like the AWS plugins: **kwargs passed up to RemoteExecutor and BaseExecutor."""

    def __init__(self, region: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.region = region


class Failing(AsyncBaseExecutor):
    def __init__(self, subnet: str = "") -> None:
        if not subnet.startswith("subnet-"):
            raise ValueError(f"{subnet!r} is not a valid subnet id")
        super().__init__()


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("COVALENT_CONFIG_DIR", str(tmp_path))
    _config.reload()
    return tmp_path


def test_an_instance_is_rebuilt_equal_to_what_the_user_made() -> None:
    made = Strict("me", "host")
    made.poll_freq = 30
    rebuilt = plugins.instantiate(Strict, "strict", {}, made.to_dict()["attributes"])
    assert type(rebuilt) is Strict and rebuilt.to_dict() == made.to_dict()
    assert isinstance(rebuilt.cache_dir, Path)  # what __init__ made, where it equals


def test_kwargs_are_followed_up_the_bases() -> None:
    assert {"region", "poll_freq", "remote_cache", "log_stdout"} <= plugins.parameters(Forwarding)
    made = Forwarding(region="eu", poll_freq=5, log_stdout="out.log")
    rebuilt = plugins.instantiate(Forwarding, "forwarding", {}, made.to_dict()["attributes"])
    assert rebuilt.to_dict() == made.to_dict()


def test_config_keys_the_class_does_not_take_are_ignored_with_a_warning(home: Path) -> None:
    (home / "covalent.conf").write_text(
        '[executors.strict]\nusername = "cfg"\nhostname = "h"\nflavour = "x"\nretries = 2\n'
    )
    _config.reload()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        made = plugins.instantiate(Strict, "strict", {"hostname": "default"})
    assert made.username == "cfg" and made.hostname == "h"
    assert any("flavour" in str(w.message) and "Strict" in str(w.message) for w in caught)
    assert plugins.task_policy("strict") == {"retries": 2}


def test_a_class_that_cannot_be_made_gets_an_error_naming_it_and_why() -> None:
    with pytest.raises(ExecutorError) as caught:
        plugins.instantiate(Failing, "failing", {"subnet": ""})
    message = str(caught.value)
    assert "Executor 'failing' (tests.test_instantiate:Failing)" in message
    assert "ValueError: '' is not a valid subnet id" in message


def test_the_server_makes_execute_executors_and_stands_in_for_run_executors() -> None:
    found = plugins.discover()
    local = plugins.for_server({"name": "local", "attributes": {"workers": 2}}, found)
    assert type(local).__name__ == "LocalExecutor" and local.to_dict()["attributes"]["workers"] == 2
    by_value = {"name": "x", "class": "__main__:Mine", "class_blob": "0" * 64, "attributes": {}}
    assert isinstance(plugins.for_server(by_value, found), WorkerExecutor)
    with pytest.raises(ExecutorError, match="not installed on the server"):
        plugins.for_server({"name": "x", "class": "elsewhere:Mine", "attributes": {}}, found)
