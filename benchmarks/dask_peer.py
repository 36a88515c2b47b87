"""W2 through ``DaskExecutor`` vs the same tasks straight to Dask, on one existing cluster.

``python -m benchmarks.dask_peer [--sizes 1000,5000] [--runs K] [--workers N] [--json PATH]``

Starts a Dask cluster on 127.0.0.1 the way users run one (``dask scheduler`` and
``--workers`` ``dask worker`` processes of one thread each, default 2), then a covalent
server in a temporary home (as ``python -m benchmarks`` does). Each W2 fan-out runs first
as a covalent dispatch whose ``inc`` and ``total`` electrons use
``DaskExecutor(scheduler_address=<the scheduler>)``, timed from ``ct.dispatch`` until the
value is in the caller's hands; then, after the server has stopped, as the same functions
submitted straight to the same cluster from this process with ``Client.submit`` (one
``submit`` per ``inc``, then ``total`` of their futures, ``pure=False``, one ``result()``).
A warm-up run comes before the timed runs on both sides. The table gives both medians
and their ratio (target: covalent/Dask ≤ 1.0, issue #18); the JSON file every number.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import covalent as ct
from benchmarks import report, runner
from benchmarks import workloads as wl
from benchmarks.workloads import Workload

DEFAULT_JSON = Path(__file__).resolve().parent / "results-dask.json"
START_DEADLINE = 180.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.dask_peer", description=__doc__)
    parser.add_argument("--sizes", default="1000,5000", help="fan-out sizes N (default 1000,5000)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per size (default 5)")
    parser.add_argument("--workers", type=int, default=2, help="dask worker processes (default 2)")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write results")
    args = parser.parse_args(argv)
    args.sizes = [int(size) for size in args.sizes.split(",") if size.strip()]
    return args


def _dask_command() -> str:
    beside = Path(sys.executable).with_name("dask")
    return str(beside) if beside.exists() else "dask"


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)  # a worker's nanny stops its worker process too
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _workers(address: str) -> int:
    import distributed

    with distributed.Client(address, timeout=30, set_as_default=False) as client:
        return len(client.nthreads())


@contextlib.contextmanager
def dask_cluster(workers: int) -> Iterator[str]:
    """A scheduler and ``workers`` single-thread workers (with nannies) on 127.0.0.1;
    yields the scheduler's address; every process stopped at the end."""
    folder = Path(tempfile.mkdtemp(prefix="cvdask-bench-"))
    address = f"tcp://127.0.0.1:{runner.free_port()}"
    quiet = ["--no-dashboard", "--dashboard-address", "127.0.0.1:0"]
    dask = _dask_command()
    env = {**os.environ}  # the workers import the workloads' functions by reference
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(runner.REPO), env.get("PYTHONPATH")]))
    commands = [[dask, "scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":")[-1]]]
    commands += [
        [dask, "worker", address, "--host", "127.0.0.1", "--nworkers", "1", "--nthreads", "1"]
        + ["--local-directory", str(folder / f"w{i}")]
        for i in range(workers)
    ]
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for i, command in enumerate(commands):
            with open(folder / f"{i}.log", "wb") as out:
                processes.append(
                    subprocess.Popen(command + quiet, stdout=out, stderr=subprocess.STDOUT, env=env)
                )
        deadline = time.monotonic() + START_DEADLINE
        while True:
            if any(p.poll() is not None for p in processes) or time.monotonic() > deadline:
                raise RuntimeError(f"the Dask cluster did not start; see the logs in {folder}")
            with contextlib.suppress(OSError, TimeoutError):
                if _workers(address) == workers:
                    break
            time.sleep(0.5)
        yield address
    finally:
        for process in reversed(processes):
            _stop(process)
        subprocess.run(["rm", "-rf", str(folder)], check=False)


def measure_dask(address: str, workload: Workload, runs: int) -> runner.Timings:
    """The same tasks straight to the cluster, one ``submit`` each: a warm-up, then
    ``runs`` timed runs."""
    import distributed

    (n,) = workload.args
    with distributed.Client(address, set_as_default=False) as client:

        def run() -> float:
            start = time.perf_counter()
            futures = [client.submit(wl.inc, i, pure=False) for i in range(n)]
            value = client.submit(wl.total, futures, pure=False).result()
            elapsed = time.perf_counter() - start
            runner.check(workload, True, value)
            return elapsed

        return runner.Timings(runner.time_runs(run, runs), workload.counts()[1])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if importlib.util.find_spec("distributed") is None:
        print("benchmarks.dask_peer needs distributed: pip install distributed", file=sys.stderr)
        return 2
    load_before, machine = os.getloadavg()[0], report.machine()
    with dask_cluster(args.workers) as address:
        executor = ct.executor.DaskExecutor(scheduler_address=address)
        chosen = [wl.fan_out_on(executor, n, "Dask") for n in args.sizes]
        measurements = []
        with runner.bench_server() as server:
            for workload in chosen:
                print(f"covalent on Dask: {workload.key} ...", file=sys.stderr, flush=True)
                measurements.append(runner.measure(server, workload, args.runs))
            hwm = server.hwm()
        for m in measurements:
            print(f"Dask alone: {m.workload.key} ...", file=sys.stderr, flush=True)
            m.peers["dask"] = measure_dask(address, m.workload, args.runs)
    context = {
        "machine": {**machine, "dask_workers": args.workers},
        "runs": args.runs,
        "quick": False,
        "server_vmhwm_bytes": hwm,
        "loadavg_1min": [load_before, os.getloadavg()[0]],
    }
    report.publish(args.json, measurements, context, ["dask"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
