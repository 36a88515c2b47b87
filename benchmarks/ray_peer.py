"""W2 through ``RayExecutor`` vs the same tasks straight to Ray, on one Ray cluster.

``python -m benchmarks.ray_peer [--sizes 100,1000] [--runs K] [--cpus N] [--json PATH]``

Starts a Ray cluster of one node on 127.0.0.1 (``ray start --head --block``, ``--cpus``
CPUs, token authentication with a token of its own), then a covalent server in a
temporary home (as ``python -m benchmarks`` does). Each W2 fan-out runs first as a
covalent dispatch whose electrons use ``RayExecutor(address=<the cluster>)``, timed from
``ct.dispatch`` to ``ct.get_result(wait=True)``; then, after the server has stopped, as the
same functions submitted straight to the same cluster from this process:
``total.remote(*[inc.remote(i) for i in range(N)])`` and one ``ray.get``. A warm-up run
comes before the timed runs on both sides. The table gives both medians and their ratio
(target: covalent/Ray ≤ 1.2 at N=1,000); the JSON file every number.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import secrets
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

AVAILABLE = importlib.util.find_spec("ray") is not None

DEFAULT_JSON = Path(__file__).resolve().parent / "results-ray.json"
START_DEADLINE = 180.0
OBJECT_STORE_BYTES = 500 * 1024 * 1024


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ray_peer", description=__doc__)
    parser.add_argument("--sizes", default="100,1000", help="fan-out sizes N (default 100,1000)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per size (default 5)")
    parser.add_argument("--cpus", type=int, default=os.cpu_count() or 1, help="the node's CPUs")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write results")
    args = parser.parse_args(argv)
    args.sizes = [int(size) for size in args.sizes.split(",") if size.strip()]
    return args


def _ray_command() -> str:
    beside = Path(sys.executable).with_name("ray")
    return str(beside) if beside.exists() else "ray"


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            parent = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry))
    found, todo = set(), [pid]
    while todo:
        found.add(todo[-1])
        todo.extend(children.get(todo.pop(), []))
    return found


@contextlib.contextmanager
def ray_cluster(cpus: int) -> Iterator[str]:
    """A one-node Ray cluster on 127.0.0.1; yields its address; stopped (and every process
    it started killed) at the end. This process's environment gets its token."""
    folder = Path(tempfile.mkdtemp(prefix="cvray-bench-"))
    token = folder / "auth_token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    os.environ.update(
        RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token)
    )
    port = runner.free_port()
    command = [
        _ray_command(), "start", "--head", "--block", "--node-ip-address=127.0.0.1",
        f"--port={port}", f"--num-cpus={cpus}", "--include-dashboard=false",
        f"--object-store-memory={OBJECT_STORE_BYTES}", f"--temp-dir={folder}",
        "--disable-usage-stats",
    ]  # fmt: skip
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}  # listen on 127.0.0.1
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(runner.REPO), env.get("PYTHONPATH")]))
    log = folder / "head.log"
    with open(log, "wb") as out:
        head = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + START_DEADLINE
        while "--block" not in log.read_text(errors="replace"):
            if head.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"`ray start` did not start; see {log}")
            time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        pids = _descendants(head.pid)
        head.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            head.wait(timeout=60)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        head.wait()
        subprocess.run(["rm", "-rf", str(folder)], check=False)


def _total_of(*values: int) -> int:
    return wl.total(list(values))


def measure_ray(address: str, workload: Workload, runs: int) -> runner.Timings:
    """The same tasks straight to the cluster: a warm-up, then ``runs`` timed runs."""
    # Ray reads its settings from the environment as it is imported: the cluster's token,
    # and RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, which keeps 127.0.0.1 as the address.
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    import ray

    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=False)
    inc, total = ray.remote(wl.inc), ray.remote(_total_of)
    (n,) = workload.args

    def run() -> float:
        start = time.perf_counter()
        value = ray.get(total.remote(*[inc.remote(i) for i in range(n)]))
        elapsed = time.perf_counter() - start
        runner.check(workload, True, value)
        return elapsed

    return runner.Timings(runner.time_runs(run, runs), workload.counts()[1])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not AVAILABLE:
        print("benchmarks.ray_peer needs ray: pip install 'covalent[ray]'", file=sys.stderr)
        return 2
    load_before, machine = os.getloadavg()[0], report.machine()
    with ray_cluster(args.cpus) as address:
        executor = ct.executor.RayExecutor(address=address)
        chosen = [wl.fan_out_on(executor, n, "Ray") for n in args.sizes]
        measurements = []
        with runner.bench_server() as server:
            for workload in chosen:
                print(f"covalent on Ray: {workload.key} ...", file=sys.stderr, flush=True)
                measurements.append(runner.measure(server, workload, args.runs))
            hwm = server.hwm()
        for m in measurements:
            print(f"Ray alone: {m.workload.key} ...", file=sys.stderr, flush=True)
            m.peers["ray"] = measure_ray(address, m.workload, args.runs)
    context = {
        "machine": {**machine, "ray": report._version("ray"), "ray_cpus": args.cpus},
        "runs": args.runs,
        "quick": False,
        "server_vmhwm_bytes": hwm,
        "loadavg_1min": [load_before, os.getloadavg()[0]],
    }
    report.publish(args.json, measurements, context, ["ray"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
