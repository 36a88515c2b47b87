"""LocalExecutor against the conformance kit, plus its own options."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from covalent.executor import LocalExecutor
from covalent.executor.testing import ExecutorConformance, TaskFactory, drive


class TestLocalExecutorConformance(ExecutorConformance):
    concurrency = 4

    @pytest.fixture
    def executor(self, tmp_path: Path) -> LocalExecutor:
        self.shared_dir = str(tmp_path)
        return LocalExecutor()


def _where() -> tuple[str, str | None]:
    return os.getcwd(), os.environ.get("COVALENT_TEST_VALUE")


def _say(text: str) -> str:
    print(text)
    return text


def test_workdir_and_env(tmp_path: Path) -> None:
    tasks = TaskFactory()
    executor = LocalExecutor(workdir=str(tmp_path / "work"), env={"COVALENT_TEST_VALUE": "42"})
    outcome = drive(executor, lambda ex: ex.execute(tasks.task(_where)))
    assert tasks.output(outcome) == (str(tmp_path / "work"), "42")
    assert os.environ.get("COVALENT_TEST_VALUE") is None


def test_create_unique_workdir(tmp_path: Path) -> None:
    tasks = TaskFactory("d1")
    task = tasks.task(_where)
    executor = LocalExecutor(workdir=str(tmp_path), create_unique_workdir=True)
    cwd, _ = tasks.output(drive(executor, lambda ex: ex.execute(task)))
    assert cwd == str(tmp_path / "d1" / f"node_{task.node_id}")


def test_log_files_get_the_output(tmp_path: Path) -> None:
    tasks = TaskFactory()
    log = tmp_path / "out.log"
    executor = LocalExecutor(log_stdout=str(log))
    drive(executor, lambda ex: ex.execute(tasks.task(_say, "logged line")))
    assert log.read_text() == "logged line\n"


def test_default_worker_count_is_at_least_eight() -> None:
    assert LocalExecutor().pool.max_workers >= max(8, os.cpu_count() or 1)
    assert LocalExecutor(workers=3).pool.max_workers == 3
