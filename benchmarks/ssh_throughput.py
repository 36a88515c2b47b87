"""Tasks per second through ``SSHExecutor`` to one host.

``python -m benchmarks.ssh_throughput [--tasks 200] [--runs K] [--max-tasks M] [--json PATH]``

Starts a real OpenSSH server on 127.0.0.1 (a free port, its own host and client keys in a
temporary folder, as the SSH executor's tests do; ``scripts/services/sshd.sh install``
installs sshd), then a covalent server in a temporary home (as ``python -m benchmarks``
does). W2 with ``--tasks`` trivial ``inc`` electrons (and their ``total``) runs on
``SSHExecutor`` to that host (``max_tasks`` at once, default the executor's 8), timed from
``ct.dispatch`` until the value is in the caller's hands; a warm-up run opens the
connection first. Target (issue #18): ≥ 100 tasks/s for 200 tasks. There is no peer.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

import covalent as ct
from benchmarks import report, runner
from benchmarks import workloads as wl
from tests.integration import sshd

DEFAULT_JSON = Path(__file__).resolve().parent / "results-ssh.json"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.ssh_throughput", description=__doc__
    )
    parser.add_argument("--tasks", type=int, default=200, help="inc electrons (default 200)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs (default 5)")
    parser.add_argument("--max-tasks", type=int, default=8, help="SSHExecutor max_tasks")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write results")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not sshd.installed():
        print("benchmarks.ssh_throughput needs sshd: bash scripts/services/sshd.sh install")
        return 2
    load_before, machine = os.getloadavg()[0], report.machine()
    folder = Path(tempfile.mkdtemp(prefix="cvssh-bench-"))
    try:
        with sshd.running_sshd(folder) as host:
            executor = ct.executor.SSHExecutor(**host.executor_settings(max_tasks=args.max_tasks))
            workload = wl.fan_out_on(executor, args.tasks, "SSH")
            with runner.bench_server() as server:
                print(f"covalent on SSH: {workload.key} ...", file=sys.stderr, flush=True)
                measurement = runner.measure(server, workload, args.runs)
                hwm = server.hwm()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    context = {
        "machine": {**machine, "ssh_max_tasks": args.max_tasks},
        "runs": args.runs,
        "quick": False,
        "server_vmhwm_bytes": hwm,
        "loadavg_1min": [load_before, os.getloadavg()[0]],
    }
    report.publish(args.json, [measurement], context, [])
    return 0


if __name__ == "__main__":
    sys.exit(main())
