"""The workloads: plain task functions, the lattices built from them, and their sizes.

The task functions are plain so that the peers (``benchmarks/peers/``) run the very same code;
the electrons wrap them without the decorator syntax.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import covalent as ct
from covalent._workflow.graph import NodeKind

MB = 10**6


def identity(x: Any) -> Any:
    return x


def square(x: int) -> int:
    return x * x


def inc(x: int) -> int:
    return x + 1


def total(values: list[int]) -> int:
    return sum(values)


def nap(seconds: float) -> int:
    time.sleep(seconds)
    return 1


def payload(size: int) -> bytes:
    """``size`` bytes, unique per call so that no store can share them between tasks."""
    return os.urandom(16) + bytes(size - 16)


def total_length(blobs: list[bytes]) -> int:
    return sum(len(b) for b in blobs)


identity_e = ct.electron(identity)
square_e = ct.electron(square)
inc_e = ct.electron(inc)
total_e = ct.electron(total)
nap_e = ct.electron(nap)
payload_e = ct.electron(payload)
total_length_e = ct.electron(total_length)


@ct.lattice
def seed(a: int) -> Any:
    """examples/seed.py: identity, then square."""
    return square_e(x=identity_e(x=a))


@ct.lattice
def fan_out(n: int) -> Any:
    return total_e([inc_e(i) for i in range(n)])


@ct.lattice
def chain(n: int) -> Any:
    out = inc_e(0)
    for _ in range(n - 1):
        out = inc_e(out)
    return out


@ct.lattice
def sleepers(n: int, seconds: float) -> Any:
    return total_e([nap_e(seconds) for _ in range(n)])


@ct.lattice
def payloads(n: int, size: int) -> Any:
    return total_length_e([payload_e(size) for _ in range(n)])


@dataclass(frozen=True)
class Workload:
    """One row of the table: a lattice, its arguments and the result it must give."""

    key: str
    group: str
    lattice: ct.Lattice
    args: tuple[Any, ...]
    expected: Any

    def counts(self) -> tuple[int, int]:
        """(nodes, electrons) of one dispatch, from tracing the lattice."""
        nodes = self.lattice.build_graph(*self.args).nodes
        return len(nodes), sum(1 for n in nodes if n.kind == NodeKind.ELECTRON)


def fan_out_workload(n: int) -> Workload:
    return Workload(f"W2 N={n}", "W2", fan_out, (n,), n * (n + 1) // 2)


def fan_out_on(executor: ct.executor.BaseExecutor, n: int, where: str) -> Workload:
    """W2 with its electrons on ``executor``, keyed ``W2 N=<n> on <where>`` (for the
    benchmarks against one cluster or host: dask_peer, ray_peer, ssh_throughput)."""
    inc_there = ct.electron(inc, executor=executor)
    total_there = ct.electron(total, executor=executor)

    @ct.lattice
    def fan_out(n: int) -> Any:
        return total_there([inc_there(i) for i in range(n)])

    return Workload(f"W2 N={n} on {where}", "W2", fan_out, (n,), n * (n + 1) // 2)


def chain_workload(n: int) -> Workload:
    return Workload(f"W3 N={n}", "W3", chain, (n,), n)


def sleep_workload(n: int, seconds: float) -> Workload:
    return Workload(f"W4 {n}x{seconds:g}s", "W4", sleepers, (n, seconds), n)


def payload_workload(n: int, size: int) -> Workload:
    return Workload(f"W5 {n}x{size // MB}MB", "W5", payloads, (n, size), n * size)


def all_workloads(quick: bool = False, large: bool = False) -> list[Workload]:
    """Every workload at full size, or small ones (``quick``) for smoke tests; ``large``
    adds W2 N=100,000 (a few minutes with its warm-up) to the full sizes."""
    seed_w = Workload("W1 seed", "W1", seed, (2,), 4)
    if quick:
        return [
            seed_w,
            *map(fan_out_workload, (10, 100)),
            *map(chain_workload, (10, 50)),
            sleep_workload(8, 0.1),
            payload_workload(10, 1 * MB),
        ]
    return [
        seed_w,
        *map(fan_out_workload, (100, 1_000, 10_000, *((100_000,) if large else ()))),
        *map(chain_workload, (100, 1_000)),
        sleep_workload(8, 1.0),
        payload_workload(10, 50 * MB),
    ]


def select(workloads: list[Workload], only: list[str]) -> list[Workload]:
    """The workloads whose group (``W2``) or key (``W2 N=1000``) is in ``only`` (all if empty)."""
    wanted = {name.strip().upper() for name in only}
    if not wanted:
        return workloads
    return [w for w in workloads if w.group in wanted or w.key.upper() in wanted]
