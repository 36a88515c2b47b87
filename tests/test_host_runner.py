"""The long-lived runner (covalent.executor.host_runner) as a real local process, spoken
to over its stdin and stdout as the SSH executor does over a channel."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest

from covalent.executor import messages
from covalent.executor.payload import PAYLOAD_VERSION
from covalent.executor.task import load_reply, outcome_from_reply
from covalent.executor.testing import TaskFactory, _add, _mark_then_sleep, _pid_alive
from tests.conftest import REPO, wait_for


class Runner:
    """A started host runner and its stream of events."""

    def __init__(self, tmp_path: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "covalent.executor.host_runner"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        self.unpacker = msgpack.Unpacker(raw=False)
        self.hello = self.next()

    def send(self, message: Any) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(messages.encode(message))
        self.process.stdin.flush()

    def next(self) -> messages.RunnerEvent:
        assert self.process.stdout is not None
        while True:
            for message in self.unpacker:
                return messages.runner_event(message)
            data = os.read(self.process.stdout.fileno(), 65536)
            assert data, "the runner's stream ended"
            self.unpacker.feed(data)

    def until_ended(self) -> Iterator[messages.RunnerEvent]:
        while True:
            event = self.next()
            yield event
            if isinstance(event, messages.Ended):
                return


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[Runner]:
    started = Runner(tmp_path)
    yield started
    started.process.kill()
    started.process.wait(timeout=60)
    for stream in (started.process.stdin, started.process.stdout, started.process.stderr):
        if stream is not None:
            stream.close()


def test_hello_then_one_process_per_task(runner: Runner) -> None:
    hello = messages.Hello(messages.RUNNER_PROTOCOL, PAYLOAD_VERSION, runner.process.pid)
    assert runner.hello == hello
    tasks = TaskFactory()
    pids = set()
    for n in range(3):
        runner.send(messages.Run(n, request=tasks.task(_add, n, y=1).packed()))
        began, *_, ended = list(runner.until_ended())
        assert isinstance(began, messages.Began) and isinstance(ended, messages.Ended)
        assert ended.id == n and ended.exit_status == 0 and ended.reply is not None
        assert tasks.output(outcome_from_reply(load_reply(ended.reply))) == n + 1
        pids.add(began.pid)
    assert len(pids) == 3 and runner.process.pid not in pids


def test_a_request_file_is_read_and_removed(runner: Runner, tmp_path: Path) -> None:
    tasks = TaskFactory()
    request = tmp_path / "task.request"
    request.write_bytes(tasks.task(_add, 2, y=3).packed())
    runner.send(messages.Run(7, request_file=str(request)))
    *_, ended = list(runner.until_ended())
    assert isinstance(ended, messages.Ended) and ended.reply is not None
    assert tasks.output(outcome_from_reply(load_reply(ended.reply))) == 5
    assert not request.exists()


def test_a_malformed_request_is_skipped_and_said(runner: Runner) -> None:
    runner.send({"type": "run", "id": "not a number"})
    runner.send(messages.Run(1, request=TaskFactory().task(_add, 1, y=1).packed()))
    *_, ended = list(runner.until_ended())
    assert isinstance(ended, messages.Ended) and ended.exit_status == 0
    runner.process.stdin.close()  # type: ignore[union-attr]
    assert runner.process.wait(timeout=60) == 0
    assert b"not a runner request" in runner.process.stderr.read()  # type: ignore[union-attr]


def test_the_stream_s_end_kills_what_runs(runner: Runner, tmp_path: Path) -> None:
    marker = tmp_path / "pid"
    runner.send(
        messages.Run(1, request=TaskFactory().task(_mark_then_sleep, str(marker), 600).packed())
    )
    wait_for(lambda: marker.exists() and marker.read_text(), 60, "the task to start")
    runner.process.stdin.close()  # type: ignore[union-attr]
    *_, ended = list(runner.until_ended())
    assert isinstance(ended, messages.Ended) and ended.exit_signal == 9 and ended.reply is None
    assert runner.process.wait(timeout=60) == 0
    assert not _pid_alive(int(marker.read_text()))


def test_malformed_events_are_refused() -> None:
    with pytest.raises(messages.MessageError, match="not a runner event"):
        messages.runner_event({"type": "ended", "id": "x"})
    with pytest.raises(messages.MessageError, match="not a runner event"):
        messages.runner_event({"type": "pickle", "id": 1})
