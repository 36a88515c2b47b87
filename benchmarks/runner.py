"""Timing workloads on a covalent server of our own, with its memory and database growth.

``BenchServer`` gives the server a temporary home (config, data and cache folders, a free
port), starts it with ``covalent start`` and stops it afterwards. A workload's peak memory
is the server's high-water mark (VmHWM in /proc/<pid>/status), reset before the workload
(:class:`PeakMemory`), so nothing in this process samples it while the runs are timed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import covalent as ct
from benchmarks.workloads import Workload

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Timings:
    """Seconds per timed run of one workload on one engine, and its size."""

    seconds: list[float]
    tasks: int

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def tasks_per_s(self) -> float:
        return self.tasks / self.median


@dataclass
class Measurement:
    """One workload on covalent: timings, the server's peak RSS, database bytes per node;
    then the same workload's timings on each peer, or why a peer did not run it."""

    workload: Workload
    timings: Timings
    nodes: int
    peak_rss: int
    db_growth: int
    db_used_growth: int
    dispatches: int
    peers: dict[str, Timings] = field(default_factory=dict)
    peer_skips: dict[str, str] = field(default_factory=dict)

    @property
    def db_per_node(self) -> float:
        return self.db_growth / (self.nodes * self.dispatches)

    @property
    def db_used_per_node(self) -> float:
        return self.db_used_growth / (self.nodes * self.dispatches)

    def ratio(self, peer: str) -> float | None:
        """covalent's median over ``peer``'s, or None if ``peer`` did not run it."""
        timings = self.peers.get(peer)
        return None if timings is None else self.timings.median / timings.median


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def proc_status_bytes(pid: int, field_name: str) -> int:
    """A memory field (``VmRSS``, ``VmHWM``) of /proc/<pid>/status, in bytes (0 if gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith(f"{field_name}:"):
            return int(line.split()[1]) * 1024
    return 0


class BenchServer:
    """A covalent server in a temporary home; the SDK of this process points at it."""

    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.port = port
        self.url = f"http://localhost:{port}"
        self.env = {
            "HOME": str(root),
            "COVALENT_CONFIG_DIR": str(root / "config"),
            "COVALENT_DATA_DIR": str(root / "data"),
            "COVALENT_CACHE_DIR": str(root / "cache"),
            "XDG_CONFIG_HOME": str(root / ".config"),
            "XDG_DATA_HOME": str(root / ".local/share"),
            "XDG_CACHE_HOME": str(root / ".cache"),
            "COVALENT_SERVER_URL": self.url,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        }
        self.pid = 0

    def start(self) -> None:
        (self.root / "config").mkdir(parents=True, exist_ok=True)
        (self.root / "config" / "covalent.conf").write_text(f"[dispatcher]\nport = {self.port}\n")
        self._cli("start")
        record = json.loads((self.root / "cache" / "server.pid").read_text())
        self.pid = int(record["pid"])

    def stop(self) -> None:
        self._cli("stop")

    def _cli(self, *args: str) -> None:
        command = [sys.executable, "-m", "covalent._cli.main", *args]
        done = subprocess.run(command, env={**os.environ, **self.env}, capture_output=True)
        if done.returncode != 0:
            raise RuntimeError(f"`covalent {' '.join(args)}` failed: {done.stderr.decode()}")

    def hwm(self) -> int:
        return proc_status_bytes(self.pid, "VmHWM")

    @property
    def db_path(self) -> Path:
        return self.root / "data" / "dispatcher.sqlite"

    def db_bytes(self) -> int:
        """Bytes of the database file once its write-ahead log is folded in.

        The WAL file grows in steps and is reused after each checkpoint, so its size says
        little about what is stored; a TRUNCATE checkpoint (from this reader: the server
        keeps writing meanwhile, and SQLite runs it without blocking the writer for long)
        moves every committed page into the database file and empties the log.
        """
        with contextlib.closing(sqlite3.connect(self.db_path, timeout=60)) as db:
            busy, _log, _moved = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        wal = self.db_path.with_name(self.db_path.name + "-wal")
        size = self.db_path.stat().st_size
        return size + (wal.stat().st_size if busy and wal.exists() else 0)

    def db_used_bytes(self) -> int:
        """Bytes of the database's pages in use, as a reader sees them (the WAL included):
        the file less its free pages."""
        with contextlib.closing(sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True)) as db:
            pages, free, size = (
                db.execute(f"PRAGMA {name}").fetchone()[0]
                for name in ("page_count", "freelist_count", "page_size")
            )
        return int((pages - free) * size)


@contextmanager
def bench_server() -> Iterator[BenchServer]:
    """A started server in a fresh temporary home, with this process's SDK pointed at it."""
    root = Path(tempfile.mkdtemp(prefix="covalent-bench-"))
    server = BenchServer(root, free_port())
    try:
        with mock.patch.dict(os.environ, server.env):
            server.start()
            try:
                yield server
            finally:
                server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


class PeakSampler:
    """Samples a value in a background thread (every ``interval`` s) and keeps the largest."""

    def __init__(self, sample: Callable[[], int], interval: float = 0.01) -> None:
        self.peak = sample()
        self._sample = sample
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.peak = max(self.peak, self._sample())

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._sample())


DB_SAMPLE_NODES = 1_000
"""The fewest nodes a workload's database growth is measured over, where its runs are
short (:data:`DB_SAMPLE_RUN`): SQLite grows by whole 4 KB pages per table and index, so
8 dispatches of W1's 3 nodes measured a page or two per table rather than what each
node costs (1.02 KB/node over 8 dispatches, 0.76 KB over 50). Untimed dispatches of the
workload make up the rest."""

DB_SAMPLE_RUN = 0.1
"""Seconds: workloads whose median run is shorter get the untimed runs above."""


class PeakMemory:
    """The peak resident memory (bytes) of process ``pid`` while the block runs, as
    ``.peak``.

    On entry the kernel's high-water mark is reset to the current resident size, by
    writing ``5`` to /proc/<pid>/clear_refs (Linux 4.0 and later; proc(5)); on exit
    VmHWM is read. Nothing runs meanwhile, so a timed run is not disturbed: a sampling
    thread in the client competes for its GIL (a W1 run lasts about 3 ms) and misses
    peaks between samples. Where the reset is refused, a :class:`PeakSampler` of
    VmRSS does the job instead.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._sampler: PeakSampler | None = None

    def __enter__(self) -> PeakMemory:
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
        except OSError:
            self._sampler = PeakSampler(lambda: proc_status_bytes(self.pid, "VmRSS"))
            self._sampler.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._sampler is not None:
            self._sampler.__exit__(*exc)
            self.peak = self._sampler.peak
        else:
            self.peak = proc_status_bytes(self.pid, "VmHWM")


def time_runs(run: Callable[[], float], runs: int) -> list[float]:
    """One untimed warm-up, then ``runs`` timed runs; ``run`` returns its own seconds."""
    run()
    return [run() for _ in range(runs)]


def covalent_run(workload: Workload) -> Callable[[], float]:
    """A run from ``ct.dispatch`` to the result's value in the caller's hands (as the
    peers' runs end with ``future.result()``), then a check."""

    def run() -> float:
        start = time.perf_counter()
        dispatch_id = ct.dispatch(workload.lattice)(*workload.args)
        result = ct.get_result(dispatch_id, wait=True)
        value = result.result  # the final read: fetched and unpickled, inside the window
        elapsed = time.perf_counter() - start
        check(workload, result.status == ct.status.COMPLETED, value, result.error)
        return elapsed

    return run


def check(workload: Workload, completed: bool, value: Any, error: Any = None) -> None:
    if not completed or value != workload.expected:
        raise RuntimeError(
            f"{workload.key} gave {value!r} (error: {error}); expected {workload.expected!r}."
        )


def measure(server: BenchServer, workload: Workload, runs: int) -> Measurement:
    """Time ``workload`` on ``server``, with its peak memory and its database growth."""
    nodes, tasks = workload.counts()
    files, used = server.db_bytes(), server.db_used_bytes()
    run = covalent_run(workload)
    with PeakMemory(server.pid) as rss:
        seconds = time_runs(run, runs)
    dispatches = runs + 1
    if statistics.median(seconds) < DB_SAMPLE_RUN:
        while nodes * dispatches < DB_SAMPLE_NODES:  # untimed: for the database figure
            run()
            dispatches += 1
    files, used = server.db_bytes() - files, server.db_used_bytes() - used
    timings = Timings(seconds, tasks)
    return Measurement(workload, timings, nodes, rss.peak, files, used, dispatches)
