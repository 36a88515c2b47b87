"""The Dask executor's bookkeeping that needs no cluster (``covalent.executor._dask_jobs``)."""

from __future__ import annotations

from covalent.executor._dask_jobs import PACK_MAX, pack_size


def test_packs_hold_only_what_the_cluster_could_not_start_at_once() -> None:
    assert pack_size(1, 2) == 1
    assert pack_size(2, 2) == 1  # one each for the two threads
    assert pack_size(3, 2) == 2
    assert pack_size(7, 2) == 4
    assert pack_size(1000, 2) == PACK_MAX
    assert pack_size(10, 0) == 10  # an unknown cluster counts as one thread
