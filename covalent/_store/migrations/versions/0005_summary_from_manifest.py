"""A small dispatch's row may keep an empty summary, read from its manifest instead
(covalent/_store/manifests.py, ``SUMMARY_APART_FROM``), and a stored manifest may be
compressed from a preset dictionary (``manifests.DICTIONARY``).

No table changes. The revision is there so that a covalent that reads every summary as
JSON, and every manifest without a dictionary, refuses this database (it does not know
the revision) rather than failing every listing that holds such a row; a downgrade
writes each empty summary out again and compresses each manifest without a dictionary.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import json
import zlib
from typing import Any

import sqlalchemy as sa
from alembic import op

from covalent._store import manifests

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
    stored = sa.select(table.c.dispatch_id, table.c.manifest)
    for dispatch_id, packed in conn.execute(stored).all():
        packed = bytes(packed)
        if not manifests.from_dictionary(packed):
            continue
        try:
            text = manifests.unpacked(packed)  # reads every stream a revision has stored
        except zlib.error:
            continue  # damaged: it stays as it is
        conn.execute(
            table.update()
            .where(table.c.dispatch_id == dispatch_id)
            .values(manifest=zlib.compress(text, 1))
        )
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
