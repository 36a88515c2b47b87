"""Helper modules: electrons that use the project's own modules, which are not installed.

The script puts ``lib/`` on ``sys.path`` and imports ``helpers`` and ``geometry`` from it.
The worker that runs the electrons has no ``lib/`` on its path: the modules' source
travels with the dispatch, so ``helpers.total`` (which imports ``weights`` only when it
runs), ``helpers.make_point`` and ``geometry.Point`` work there, and the points that come
back are instances of this script's own ``geometry.Point``. See docs/api.md.

    python examples/helper_modules/flow.py
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))

import helpers  # noqa: E402
from geometry import Point  # noqa: E402

import covalent as ct  # noqa: E402


@ct.electron
def weighted_total(values):
    return helpers.total(values)


@ct.electron
def corner(size):
    return helpers.make_point(size, size)


@ct.electron
def norm2(point):
    return point.norm2()


@ct.lattice
def workflow(values, size):
    point = corner(size)
    return weighted_total(values), norm2(point), helpers.scaled(point, 10)


if __name__ == "__main__":
    result = ct.dispatch_sync(workflow)([1, 2, 3], 4)
    print(f"status: {result.status}")
    if result.status != ct.status.COMPLETED:
        print(result.error)
        raise SystemExit(1)
    total, size, big = result.result
    print(f"total: {total}")
    print(f"norm2: {size}")
    print(f"scaled: {big!r}")
    print(f"a Point of this script: {isinstance(big, Point)}")
    print(f"dispatch id: {result.dispatch_id}")
