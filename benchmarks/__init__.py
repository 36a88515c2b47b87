"""Benchmarks of covalent (and, with ``--peers``, of dask.distributed): ``python -m benchmarks``.

Not part of the test suite. See docs/performance.md for what each workload measures.
"""
