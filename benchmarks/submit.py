"""``python -m benchmarks.submit [--width N] [--runs K]``: the cost of the door.

Times the submit path of one wide fan-out (W2: ``width`` electrons, their parameters, one
collection and a total: about twice ``width`` nodes) on a real server: the bundle is
built once, then posted ``runs`` times with ``disable_run=true`` (checked and stored,
nothing run). Also times the server's own check of the body in this process
(:func:`covalent._wire.schema.read_bundle` and ``check_structure``), the part validation
costs. docs/performance.md ("The door") has figures from before and after the schema.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections.abc import Callable

import httpx

from benchmarks.runner import bench_server
from benchmarks.workloads import fan_out
from covalent._wire import bundle, schema
from covalent._wire import manifest as manifestmod


def build(width: int) -> tuple[bytes, int]:
    """The bundle of ``fan_out(width)`` and its node count."""
    graph = fan_out.build_graph(width)
    manifest, blobs = manifestmod.from_graph(graph, (width,), {}, fan_out)
    return bundle.pack(manifest, blobs), len(manifest["nodes"])


def door(body: bytes) -> object:
    """What the server does with a body before it stores anything (without the store):
    decode and check it against the schema, then check its structure."""
    manifest, blobs = schema.read_bundle(body)
    schema.check_structure(manifest, blobs.__contains__)
    return manifest


def timed(action: Callable[[], object], runs: int) -> list[float]:
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        seconds.append(time.perf_counter() - start)
    return seconds


def line(what: str, seconds: list[float]) -> str:
    return (
        f"{what}: median {statistics.median(seconds):.3f} s, min {min(seconds):.3f} s "
        f"({', '.join(f'{s:.2f}' for s in seconds)})"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.submit", description=__doc__)
    parser.add_argument("--width", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    body, nodes = build(args.width)
    print(f"fan-out of {args.width}: {nodes} nodes, a bundle of {len(body) / 1e6:.1f} MB")
    gc.set_threshold(50_000, 20, 100)  # as the server sets it
    print(line("door in-process (read + check)", timed(lambda: door(body), args.runs)))
    with bench_server() as server, httpx.Client(timeout=600) as client:
        url = f"{server.url}/api/v1/dispatches?disable_run=true"

        def post() -> None:
            client.post(url, content=body).raise_for_status()

        print(line("POST /api/v1/dispatches (disable_run)", timed(post, args.runs)))


if __name__ == "__main__":
    main()
