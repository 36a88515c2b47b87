"""``python -m benchmarks [--quick] [--large] [--only W2] [--runs K] [--peers [dask,ray,...]]
[--json PATH]``.

Starts a covalent server in a temporary home, runs each workload (a warm-up, then the
timed runs), stops the server; with ``--peers`` then runs the same workloads on each peer
engine that is installed (dask.distributed, Ray, Parsl, Prefect: ``benchmarks/peers/``),
one after the other, each started and stopped in a temporary home of its own. A peer that
is not installed is skipped with a note. Prints one table with the targets and a median
and a ratio column per peer, and writes every number to a JSON file.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path

from benchmarks import peers, report, runner
from benchmarks.workloads import Workload, all_workloads, select

DEFAULT_JSON = Path(__file__).resolve().parent / "results.json"
PEER_NAMES = ",".join(spec.name for spec in peers.PEERS)


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
    parser.add_argument(
        "--peers",
        nargs="?",
        const="",
        metavar="NAMES",
        help=f"also run them on these peers, a,b (default: every installed one of {PEER_NAMES})",
    )
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


def run_peer(spec: peers.PeerSpec, measurements: list[runner.Measurement], runs: int) -> str:
    """Every workload of ``measurements`` on one peer; returns its setup in one line."""
    with spec.environment() as home, spec.load(home) as peer:
        progress(f"{spec.name}: {peer.describe()}")
        for m in measurements:
            reason = peer.skips(m.workload)
            if reason is not None:
                m.peer_skips[spec.name] = f"skipped: {reason}"
                progress(f"{spec.name}: {m.workload.key} skipped: {reason}")
                continue
            progress(f"{spec.name}: {m.workload.key} ...")
            m.peers[spec.name] = peer.measure(m.workload, runs)
            progress(f"  median {report.seconds(m.peers[spec.name].median)}")
        return peer.describe()


def run_peers(
    specs: list[peers.PeerSpec], measurements: list[runner.Measurement], runs: int
) -> tuple[dict[str, str], list[str]]:
    """Each installed peer in turn: ({peer: its setup or why it is missing}, the notes for
    under the table). A peer that fails is noted, and the others still run."""
    setups, notes = {}, []
    for spec in specs:
        if not spec.installed():
            setups[spec.name] = spec.skip_note()
            notes.append(spec.skip_note())
            progress(spec.skip_note())
            continue
        try:
            setups[spec.name] = run_peer(spec, measurements, runs)
        except Exception as error:  # one engine's fault must not lose the others' numbers
            traceback.print_exc()
            setups[spec.name] = f"failed: {spec.name}: {error!r}"
            notes.append(setups[spec.name])
    return setups, notes


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        specs = [] if args.peers is None else peers.choose(args.peers.split(","))
    except ValueError as error:
        print(f"--peers: {error}", file=sys.stderr)
        return 2
    chosen = select(all_workloads(args.quick, args.large), args.only)
    if not chosen:
        print(f"No workload matches {args.only}.", file=sys.stderr)
        return 2
    load_before, machine = os.getloadavg()[0], report.machine()  # before the code can change
    measurements, hwm = run_covalent(chosen, args.runs)
    setups, notes = run_peers(specs, measurements, args.runs)
    context = {
        "machine": machine,
        "runs": args.runs,
        "quick": args.quick,
        "large": args.large,
        "server_vmhwm_bytes": hwm,
        "loadavg_1min": [load_before, os.getloadavg()[0]],
        "peers": setups,
    }
    ran = [
        s.name
        for s in specs
        if any(s.name in m.peers or s.name in m.peer_skips for m in measurements)
    ]
    report.publish(args.json, measurements, context, ran, notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
