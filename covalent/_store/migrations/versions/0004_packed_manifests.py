"""A stored manifest may be compressed (zlib): covalent/_store/manifests.py.

No table changes. The revision is there so that a covalent that reads every manifest as
JSON refuses this database (it does not know the revision) rather than failing the
dispatches it cannot read; a downgrade stores every manifest as JSON again.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import zlib

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_DISPATCHES = sa.table(
    "dispatches", sa.column("dispatch_id", sa.String), sa.column("manifest", sa.LargeBinary)
)


def upgrade() -> None:
    pass  # rows stored as JSON read as they are


def downgrade() -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.select(_DISPATCHES.c.dispatch_id, _DISPATCHES.c.manifest)).all()
    for dispatch_id, raw in rows:
        if bytes(raw[:1]) != b"{":
            try:
                text = zlib.decompress(raw)
            except zlib.error:
                continue  # damaged: it stays as it is (0003 fails that dispatch on resume)
            conn.execute(
                _DISPATCHES.update()
                .where(_DISPATCHES.c.dispatch_id == dispatch_id)
                .values(manifest=text)
            )
