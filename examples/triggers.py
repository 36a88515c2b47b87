"""Triggers: a lattice that runs again every half second, until its triggers are stopped.

    python examples/triggers.py

The dispatch runs at once, as usual; the server then dispatches the lattice again, with
the same inputs, every ``time_gap`` seconds. Each run appends a line to a heartbeat file;
once three runs (the first and two triggered ones) have written theirs, the example
stops the triggers. ``ct.triggers.DirTrigger(folder, ["created"])`` works the same way
for files arriving in a folder. See docs/triggers.md.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import covalent as ct

RUNS = 3
DEADLINE = 120.0


@ct.electron
def beat(path: str) -> str:
    stamp = time.strftime("%H:%M:%S")
    with open(path, "a") as f:
        f.write(f"{stamp}\n")
    return stamp


@ct.lattice(triggers=ct.triggers.TimeTrigger(time_gap=0.5))
def heartbeat(path: str) -> str:
    return beat(path)


def runs(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def main() -> int:
    log = Path(tempfile.mkdtemp(prefix="heartbeat-")) / "heartbeat.txt"
    dispatch_id = ct.dispatch(heartbeat)(str(log))
    print(f"dispatched {dispatch_id}: it runs now, and again every 0.5 s")
    deadline = time.monotonic() + DEADLINE
    try:
        while runs(log) < RUNS:
            if time.monotonic() > deadline:
                print(f"only {runs(log)} runs after {DEADLINE:g} s", file=sys.stderr)
                return 1
            time.sleep(0.1)
    finally:
        ct.stop_triggers(dispatch_id)
    print(f"triggers stopped after {runs(log)} runs: {', '.join(log.read_text().split())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
