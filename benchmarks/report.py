"""Targets, the printed table and the JSON file.

Sizes are decimal: 1 KB = 1,000 bytes, 1 MB = 1,000,000 bytes.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import covalent as ct
from benchmarks.runner import REPO, Measurement, Timings

KB, MB = 10**3, 10**6


@dataclass(frozen=True)
class Target:
    """A limit on one metric of one workload (``key``), or of every workload (``"*"``);
    a ``ratio`` is covalent's median over ``peer``'s."""

    key: str
    metric: str
    limit: float
    at_least: bool = False
    peer: str = "dask"

    def value(self, m: Measurement) -> Any:
        return m.ratio(self.peer) if self.metric == "ratio" else METRICS[self.metric](m)

    def applies(self, m: Measurement) -> bool:
        return self.key in ("*", m.workload.key) and self.value(m) is not None

    def passed(self, m: Measurement) -> bool:
        value = self.value(m)
        return value >= self.limit if self.at_least else value <= self.limit

    def label(self) -> str:
        sign = ">=" if self.at_least else "<="
        peer = f"/{self.peer}" if self.metric == "ratio" else ""
        return f"{self.metric}{peer} {sign} {FORMATS[self.metric](self.limit)}"


METRICS: dict[str, Callable[[Measurement], Any]] = {
    "median": lambda m: m.timings.median,
    "tasks/s": lambda m: m.timings.tasks_per_s,
    "RSS": lambda m: m.peak_rss,
    "DB/node": lambda m: m.db_per_node,
}


def seconds(value: float) -> str:
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"


FORMATS: dict[str, Callable[[float], str]] = {
    "median": seconds,
    "tasks/s": lambda v: f"{v:,.0f}" if v >= 10 else f"{v:.2f}",
    "RSS": lambda v: f"{v / MB:.0f} MB",
    "DB/node": lambda v: f"{v / KB:.2f} KB",
    "ratio": lambda v: f"{v:.2f}",
}

TARGETS = [  # issue #18's second round; W2 N=1000 and W4 keep the first round's
    Target("W1 seed", "median", 0.003),
    Target("W2 N=1000", "median", 0.5),
    Target("W2 N=10000", "median", 0.5),
    Target("W2 N=10000", "tasks/s", 20_000, at_least=True),
    Target("W2 N=10000", "RSS", 300 * MB),
    Target("W2 N=100000", "median", 5.0),
    Target("W2 N=100000", "RSS", 300 * MB),
    Target("W3 N=1000", "median", 0.15),
    Target("W4 8x1s", "median", 1.3),
    Target("W5 10x50MB", "ratio", 1.0),
    Target("W5 10x50MB", "RSS", 300 * MB),
    Target("*", "DB/node", 1 * KB),
    Target("W2 N=1000 on Ray", "ratio", 1.2, peer="ray"),  # benchmarks.ray_peer: vs Ray alone
    Target("W2 N=1000 on Dask", "ratio", 1.0),  # benchmarks.dask_peer: DaskExecutor vs Dask
    Target("W2 N=5000 on Dask", "ratio", 1.0),
    Target("W2 N=200 on SSH", "tasks/s", 100, at_least=True),  # benchmarks.ssh_throughput
]


def verdicts(m: Measurement) -> list[tuple[Target, bool]]:
    return [(t, t.passed(m)) for t in TARGETS if t.applies(m)]


def _peer_cells(m: Measurement, peer: str) -> list[str]:
    timings, ratio = m.peers.get(peer), m.ratio(peer)
    if timings is None or ratio is None:
        return [m.peer_skips.get(peer, "-"), "-"]
    return [seconds(timings.median), f"{ratio:.2f}"]


def _row(m: Measurement, peers: list[str]) -> list[str]:
    t = m.timings
    cells = [m.workload.key, seconds(t.median), seconds(min(t.seconds)), seconds(max(t.seconds))]
    cells += [FORMATS["tasks/s"](t.tasks_per_s), FORMATS["RSS"](m.peak_rss)]
    cells.append(f"{m.db_per_node / KB:.2f} / {m.db_used_per_node / KB:.2f} KB")
    for peer in peers:
        cells += _peer_cells(m, peer)
    marks = [f"{t.label()} {'PASS' if ok else 'FAIL'}" for t, ok in verdicts(m)]
    return [*cells, "; ".join(marks)]


def table(measurements: list[Measurement], peers: list[str]) -> str:
    """A Markdown table, with a median and a ratio column per peer in ``peers``: it reads
    as plain text and pastes into docs/performance.md."""
    head = ["workload", "median", "min", "max", "tasks/s", "peak RSS", "DB/node files / used"]
    for peer in peers:
        head += [f"{peer} median", f"covalent/{peer}"]
    rows = [[*head, "targets"]] + [_row(m, peers) for m in measurements]
    widths = [max(len(row[i]) for row in rows) for i in range(len(head) + 1)]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
        for row in rows
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "covalent": ct.__version__,
        "distributed": _version("distributed"),
        "commit": _commit(),
    }


def _commit() -> str | None:
    """The checkout's commit, with ``-dirty`` if covalent/ has uncommitted changes."""
    git = ["git", "-C", str(REPO)]
    try:
        head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True)
        dirty = subprocess.run([*git, "status", "--porcelain", "covalent"], capture_output=True)
    except OSError:
        return None
    if head.returncode != 0:
        return None
    return head.stdout.decode().strip() + ("-dirty" if dirty.stdout.strip() else "")


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def summary(context: dict[str, Any]) -> str:
    """The line under the table: runs, the server's VmHWM, the load, the machine."""
    before, after = context["loadavg_1min"]
    return (
        f"{context['runs']} timed run(s) after one warm-up; server VmHWM (peak since start) "
        f"{context['server_vmhwm_bytes'] / MB:.0f} MB; load average {before:.1f} before, "
        f"{after:.1f} after; " + ", ".join(f"{k} {v}" for k, v in context["machine"].items())
    )


def _timings(t: Timings) -> dict[str, Any]:
    return {
        "seconds": t.seconds,
        "median": t.median,
        "min": min(t.seconds),
        "max": max(t.seconds),
        "tasks": t.tasks,
        "tasks_per_s": t.tasks_per_s,
    }


def _measurement(m: Measurement) -> dict[str, Any]:
    return {
        "workload": m.workload.key,
        "group": m.workload.group,
        "nodes": m.nodes,
        "covalent": _timings(m.timings),
        "peak_rss_bytes": m.peak_rss,
        "db_growth_bytes": m.db_growth,
        "dispatches": m.dispatches,
        "db_bytes_per_node": m.db_per_node,
        "db_used_growth_bytes": m.db_used_growth,
        "db_used_bytes_per_node": m.db_used_per_node,
        "peers": {
            **{peer: {"skipped": why} for peer, why in m.peer_skips.items()},
            **{peer: _timings(t) for peer, t in m.peers.items()},
        },
        "ratios": {peer: m.ratio(peer) for peer in m.peers},
        "targets": [
            {"target": t.label(), "value": t.value(m), "passed": ok} for t, ok in verdicts(m)
        ],
    }


def write_json(path: Path, measurements: list[Measurement], extra: dict[str, Any]) -> None:
    document = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **extra,
        "workloads": [_measurement(m) for m in measurements],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")


def publish(
    path: Path,
    measurements: list[Measurement],
    context: dict[str, Any],
    peers: list[str],
    notes: Sequence[str] = (),
) -> None:
    """Print the table (with a median and a ratio column per peer in ``peers``), the
    ``notes`` (a peer skipped, and why) and the summary line; write every number to
    ``path``."""
    print(table(measurements, peers))
    for note in notes:
        print(note)
    print(f"\n{summary(context)}")
    write_json(path, measurements, context)
    print(f"results written to {path}")
