"""Where the time goes: ``python -m benchmarks.profile [--quick] [--only W2] [--dask] [--out DIR]``.

For each chosen workload: a warm-up dispatch, then one dispatch while py-spy samples both
the server and this process (the client). With ``--dask``, the workload is instead W2
(N = 1,000; 100 with ``--quick``) through ``DaskExecutor`` on a Dask cluster started as
``benchmarks.dask_peer`` starts one. Writes the collapsed stacks to
``DIR/<workload>.{server,client}.txt`` (speedscope.app and flamegraph.pl read them) and
prints the functions with the most samples, by own time and by total time. Only threads
holding the GIL are sampled (py-spy ``--gil``): that is where the Python CPU time went;
native work done without the GIL (SQLite, socket I/O) does not show.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import covalent as ct
from benchmarks import dask_peer, runner
from benchmarks.workloads import Workload, all_workloads, fan_out_on, select

RATE = 200
"""Samples per second (``--rate``): 1,000 tells apart pieces of a few milliseconds."""
TOP = 15


@contextmanager
def py_spy(pid: int, out: Path, rate: int = RATE) -> Iterator[None]:
    """Sample ``pid`` with py-spy into ``out`` (collapsed stacks) while the block runs."""
    command = ["py-spy", "record", "--pid", str(pid), "--format", "raw", "--nolineno"]
    command += ["--gil", "--nonblocking", "--rate", str(rate), "--output", str(out)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.0)  # py-spy needs a moment to attach
    try:
        yield
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
        if not out.exists():
            raise RuntimeError(f"py-spy wrote no profile: {err.decode()}")


def read_stacks(path: Path) -> Counter[tuple[str, ...]]:
    stacks: Counter[tuple[str, ...]] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        stacks[tuple(stack.split(";"))] += int(count)
    return stacks


def top_functions(stacks: Counter[tuple[str, ...]], rate: int = RATE) -> str:
    """The functions with the most samples: any by own time; covalent's by total time."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for stack, count in stacks.items():
        own[stack[-1]] += count
        for frame in set(stack):
            total[frame] += count if "(covalent/" in frame else 0
    samples = sum(stacks.values()) or 1
    lines = [f"{samples} samples holding the GIL = {samples / rate:.2f} s"]
    for title, counter in (("own time", own), ("total time, covalent only", total)):
        lines.append(f"  by {title}:")
        lines += [f"    {100 * n / samples:5.1f}%  {f}" for f, n in counter.most_common(TOP) if n]
    return "\n".join(lines)


def profile(server: runner.BenchServer, workload: Workload, out: Path, rate: int = RATE) -> None:
    run = runner.covalent_run(workload)
    run()
    name = workload.key.replace(" ", "_").replace("=", "")
    server_out, client_out = out / f"{name}.server.txt", out / f"{name}.client.txt"
    with py_spy(server.pid, server_out, rate), py_spy(os.getpid(), client_out, rate):
        seconds = run()
    print(f"\n## {workload.key}: {seconds:.3f} s under the profiler")
    for side, path in (("server", server_out), ("client", client_out)):
        print(f"\n### {side} ({path})\n{top_functions(read_stacks(path), rate)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="the small sizes")
    parser.add_argument("--only", action="append", default=[], metavar="W")
    parser.add_argument(
        "--out", type=Path, default=Path(tempfile.gettempdir()) / "covalent-profiles"
    )
    parser.add_argument("--rate", type=int, default=RATE, help="samples per second")
    parser.add_argument("--dask", action="store_true", help="W2 through DaskExecutor")
    args = parser.parse_args(argv)
    if shutil.which("py-spy") is None:
        print("profiling needs py-spy: pip install py-spy", file=sys.stderr)
        return 2
    only = [name for item in args.only for name in item.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    if args.dask:
        return profile_dask(args.quick, args.out, args.rate)
    with runner.bench_server() as server:
        for workload in select(all_workloads(args.quick), only):
            profile(server, workload, args.out, args.rate)
    return 0


def profile_dask(quick: bool, out: Path, rate: int) -> int:
    """W2 through ``DaskExecutor`` on a cluster of 2 single-thread workers."""
    with dask_peer.dask_cluster(2) as address:
        executor = ct.executor.DaskExecutor(scheduler_address=address)
        workload = fan_out_on(executor, 100 if quick else 1000, "Dask")
        with runner.bench_server() as server:
            profile(server, workload, out, rate)
    return 0


if __name__ == "__main__":
    sys.exit(main())
