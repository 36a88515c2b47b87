"""Alembic migrations of the store's schema (run by ``covalent db migrate`` and at start)."""
