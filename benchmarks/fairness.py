"""``python -m benchmarks.fairness [--width N]``: what a large dispatch costs the others.

On a benchmark server, one thread dispatches a fan-out of ``width`` electrons (W2's
shape: about twice ``width`` nodes) and waits for its result, while this thread
dispatches the seed (W1) again and again and another asks ``GET /api/v1/health`` every
10 ms, until the large one is done. It prints the seed's and the health check's latency
(median, 99th percentile, max; the max's time after the large dispatch began) and when
the large one was accepted and done. On an idle server the seed takes ~3 ms and the
health check ~1 ms; what more they take here is what the large dispatch holds them up.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time

import httpx

import covalent as ct
from benchmarks.runner import bench_server
from benchmarks.workloads import Workload, all_workloads, fan_out_workload

Sample = tuple[float, float]  # (when it began, seconds after the large dispatch began; took)


def run_seed(seed: Workload) -> None:
    result = ct.get_result(ct.dispatch(seed.lattice)(*seed.args), wait=True)
    if result.result != seed.expected:
        raise RuntimeError(f"the seed gave {result.result!r}: {result.error}")


def line(what: str, samples: list[Sample]) -> str:
    took = sorted(s for _, s in samples)
    if not took:
        return f"{what}: none"
    worst = max(samples, key=lambda s: s[1])
    p99 = took[min(len(took) - 1, int(len(took) * 0.99))]
    return (
        f"{what}: {len(took)} while it ran, median {statistics.median(took) * 1e3:.1f} ms, "
        f"p99 {p99 * 1e3:.0f} ms, max {worst[1] * 1e3:.0f} ms (at +{worst[0]:.2f} s)"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fairness", description=__doc__)
    parser.add_argument("--width", type=int, default=100_000, help="electrons of the fan-out")
    args = parser.parse_args(argv)
    seed = next(w for w in all_workloads() if w.key == "W1 seed")
    large = fan_out_workload(args.width)
    with bench_server() as server:
        for _ in range(20):  # warm: the seed's executor and workers are up
            run_seed(seed)
        began = time.time()
        marks: dict[str, float] = {}

        def run_large() -> None:
            dispatch_id = ct.dispatch(large.lattice)(*large.args)
            marks["accepted"] = time.time() - began
            ct.get_result(dispatch_id, wait=True)
            marks["done"] = time.time() - began

        def ask_health(into: list[Sample]) -> None:
            with httpx.Client(timeout=600) as client:
                while worker.is_alive():
                    start = time.time()
                    client.get(f"{server.url}/api/v1/health").raise_for_status()
                    into.append((start - began, time.time() - start))
                    time.sleep(0.01)

        worker = threading.Thread(target=run_large)
        worker.start()
        health: list[Sample] = []
        asker = threading.Thread(target=ask_health, args=(health,))
        asker.start()
        seeds: list[Sample] = []
        while worker.is_alive():
            start = time.time()
            run_seed(seed)
            seeds.append((start - began, time.time() - start))
        worker.join()
        asker.join()
    print(
        f"fan-out of {args.width:,}: accepted after {marks['accepted']:.2f} s, "
        f"done after {marks['done']:.2f} s"
    )
    print(line("seed (W1)", seeds))
    print(line("GET /api/v1/health", health))


if __name__ == "__main__":
    main()
