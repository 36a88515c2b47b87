"""``python -m benchmarks [--quick] [--large] [--only W2] [--runs K] [--peers] [--json PATH]``.

Starts a covalent server in a temporary home, runs each workload (a warm-up, then the
timed runs), stops the server; with ``--peers`` then runs the same workloads on a local
dask cluster. Prints one table with the targets and writes every number to a JSON file.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from benchmarks import peers, report, runner
from benchmarks.workloads import Workload, all_workloads, select

DEFAULT_JSON = Path(__file__).resolve().parent / "results.json"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes and one run")
    parser.add_argument("--large", action="store_true", help="also W2 N=100000 (minutes)")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="W",
        help="only these workloads, by group (W2) or key ('W2 N=1000'); repeatable or a,b",
    )
    parser.add_argument("--runs", type=int, help="timed runs per workload (default 5; 1 quick)")
    parser.add_argument("--peers", action="store_true", help="also run them on dask.distributed")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write results")
    args = parser.parse_args(argv)
    args.only = [name for item in args.only for name in item.split(",") if name.strip()]
    args.runs = args.runs or (1 if args.quick else 5)
    return args


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_covalent(chosen: list[Workload], runs: int) -> tuple[list[runner.Measurement], int]:
    """Measurements on our own server, and the server's VmHWM at the end."""
    measurements = []
    with runner.bench_server() as server:
        progress(f"covalent server pid {server.pid} at {server.url}")
        for workload in chosen:
            progress(f"covalent: {workload.key} ...")
            measurements.append(runner.measure(server, workload, runs))
            progress(f"  median {report.seconds(measurements[-1].timings.median)}")
        return measurements, server.hwm()


def run_peers(measurements: list[runner.Measurement], runs: int) -> None:
    with peers.dask_client() as client:
        for m in measurements:
            progress(f"dask: {m.workload.key} ...")
            m.peer = peers.measure(client, m.workload, runs)
            progress(f"  median {report.seconds(m.peer.median)}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.peers and not peers.AVAILABLE:
        print("--peers needs dask.distributed: pip install distributed", file=sys.stderr)
        return 2
    chosen = select(all_workloads(args.quick, args.large), args.only)
    if not chosen:
        print(f"No workload matches {args.only}.", file=sys.stderr)
        return 2
    load_before, machine = os.getloadavg()[0], report.machine()  # before the code can change
    measurements, hwm = run_covalent(chosen, args.runs)
    if args.peers:
        run_peers(measurements, args.runs)
    context = {
        "machine": machine,
        "runs": args.runs,
        "quick": args.quick,
        "large": args.large,
        "server_vmhwm_bytes": hwm,
        "loadavg_1min": [load_before, os.getloadavg()[0]],
    }
    report.publish(args.json, measurements, context, args.peers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
