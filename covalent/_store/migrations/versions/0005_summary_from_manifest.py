"""A small dispatch's row may keep an empty summary, read from its manifest instead
(covalent/_store/manifests.py, ``SUMMARY_APART_FROM``).

No table changes. The revision is there so that a covalent that reads every summary as
JSON refuses this database (it does not know the revision) rather than failing every
listing that holds such a row; a downgrade writes each empty summary out again.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import json
import zlib
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_DISPATCHES = sa.table(
    "dispatches",
    sa.column("dispatch_id", sa.String),
    sa.column("lattice_name", sa.Text),
    sa.column("manifest", sa.LargeBinary),
    sa.column("summary", sa.Text),
)


def upgrade() -> None:
    pass  # rows with their summary read as they are


def downgrade() -> None:
    conn = op.get_bind()
    table = _DISPATCHES
    query = sa.select(table.c.dispatch_id, table.c.lattice_name, table.c.manifest).where(
        table.c.summary == ""
    )
    for dispatch_id, name, raw in conn.execute(query).all():
        conn.execute(
            table.update()
            .where(table.c.dispatch_id == dispatch_id)
            .values(summary=json.dumps(_summary(bytes(raw), name)))
        )


def _summary(raw: bytes, name: str) -> dict[str, Any]:
    """What this revision's covalent read from a stored manifest (fixed here: the
    application's code may change after this revision)."""
    try:
        manifest = json.loads(raw if raw[:1] == b"{" else zlib.decompress(raw))
        lattice = manifest["lattice"]
        return {
            "lattice": {k: lattice.get(k) for k in ("name", "doc", "function")},
            "inputs": manifest["inputs"],
            "result": manifest["result"],
        }
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError, zlib.error):
        return {
            "lattice": {"name": name, "doc": None, "function": None},
            "inputs": {"args": [], "kwargs": {}, "args_repr": [], "kwargs_repr": {}},
            "result": {},
        }
