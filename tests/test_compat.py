"""Every module path of the original Covalent that plugins and user code import, and
what it gives (covalent/_compat serves them, as aliases of this project's modules)."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pytest

import covalent as ct
from covalent import _compat
from covalent._client import dispatch as dispatchmod
from covalent._client.redispatch import redispatch
from covalent._errors import CovalentError
from covalent._results.result import Result
from covalent._results.status import Status
from covalent._wire.transport import TransportableObject
from covalent._workflow import strategies, transfer
from covalent.executor.base import AsyncBaseExecutor, BaseExecutor
from covalent.executor.remote import RemoteExecutor
from covalent.executor.wrapper import wrapper_fn

EXPECTED = {
    ("covalent._shared_files.config", "get_config"): ct.get_config,
    ("covalent._shared_files.config", "set_config"): ct.set_config,
    ("covalent._shared_files.logger", "app_log"): None,
    ("covalent._shared_files", "TaskCancelledError"): None,
    ("covalent._shared_files", "TaskRuntimeError"): None,
    ("covalent._shared_files.exceptions", "TaskCancelledError"): None,
    ("covalent._shared_files.util_classes", "RESULT_STATUS"): None,
    ("covalent._shared_files.util_classes", "Status"): Status,
    ("covalent._shared_files.defaults", "parameter_prefix"): ":parameter:",
    ("covalent._results_manager", "Result"): Result,
    ("covalent._results_manager.result", "Result"): Result,
    ("covalent._results_manager.results_manager", "get_result"): dispatchmod.get_result,
    ("covalent._results_manager.results_manager", "cancel"): dispatchmod.cancel,
    ("covalent._workflow.transport", "TransportableObject"): TransportableObject,
    ("covalent._workflow.lattice", "Lattice"): ct.Lattice,
    ("covalent.executor", "BaseExecutor"): BaseExecutor,
    ("covalent.executor.base", "AsyncBaseExecutor"): AsyncBaseExecutor,
    ("covalent.executor.base", "wrapper_fn"): wrapper_fn,
    ("covalent.executor.executor_plugins.remote_executor", "RemoteExecutor"): RemoteExecutor,
    ("covalent._file_transfer", "FileTransfer"): transfer.FileTransfer,
    ("covalent._file_transfer.file_transfer", "FileTransfer"): transfer.FileTransfer,
    ("covalent._file_transfer.enums", "Order"): transfer.Order,
    ("covalent._file_transfer.strategies", "Rsync"): strategies.Rsync,
    ("covalent._file_transfer.strategies.rsync_strategy", "Rsync"): strategies.Rsync,
    ("covalent._file_transfer.strategies.shutil_strategy", "Shutil"): strategies.Shutil,
    ("covalent._file_transfer.strategies.http_strategy", "HTTP"): strategies.HTTP,
    ("covalent._dispatcher_plugins.local", "LocalDispatcher"): None,
}


@pytest.mark.parametrize(("path", "name"), sorted(EXPECTED))
def test_each_path_imports_and_gives_this_projects_object(path: str, name: str) -> None:
    module = importlib.import_module(path)
    value = getattr(module, name)
    expected = EXPECTED[(path, name)]
    if expected is not None:
        assert value is expected or value == expected
    if _compat.target(path):  # an alias: the same module object under both names
        assert module is importlib.import_module(_compat.target(path) or "")


def test_what_the_plugins_use_behaves() -> None:
    from covalent._dispatcher_plugins.local import LocalDispatcher
    from covalent._shared_files import TaskCancelledError, logger
    from covalent._shared_files.util_classes import RESULT_STATUS

    assert issubclass(TaskCancelledError, CovalentError)
    assert logger.app_log.name == "covalent"
    assert RESULT_STATUS.COMPLETED == "COMPLETED" and Result.NEW_OBJ == Status.NEW_OBJECT
    assert LocalDispatcher.dispatch is ct.dispatch and LocalDispatcher.redispatch is redispatch
    assert inspect.iscoroutinefunction(RemoteExecutor.run)


def test_a_transportable_object_keeps_its_value_and_python_version() -> None:
    value = TransportableObject({"a": [1, 2]})
    assert value.get_deserialized() == {"a": [1, 2]}
    assert value.python_version.count(".") == 2
    again = TransportableObject.deserialize(value.serialize())
    assert again == value and again.get_deserialized() == {"a": [1, 2]}
    with pytest.raises(TypeError):
        TransportableObject.deserialize(TransportableObject(1).get_serialized())


def test_paths_that_are_not_aliases_stay_unknown() -> None:
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("covalent._shared_files.no_such_module")
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("covalent._no_such_package")


def test_plugin_defaults_are_part_of_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from covalent._shared_files.config import get_config

    monkeypatch.setenv("COVALENT_CONFIG_DIR", str(tmp_path))
    ct.reload_config()
    assert get_config("executors.local.workers") == 0  # LocalExecutor's default, no file
    assert get_config()["executors"]["ssh"]["python_path"] == "python3"
    (tmp_path / "covalent.conf").write_text("[executors.local]\nworkers = 3\n")
    ct.reload_config()
    assert get_config("executors.local")["workers"] == 3
    assert get_config("executors.local.memory_limit") == 0  # the rest: still the defaults
