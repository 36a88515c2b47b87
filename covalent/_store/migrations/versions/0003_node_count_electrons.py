"""A dispatch's node count counts its electrons, not its parameter nodes.

The list, the CLI and the UI all mean the nodes that do work; rows stored before this
counted parameters too, so they are counted again from their node rows.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_RECOUNT = (
    "UPDATE dispatches SET node_count = (SELECT COUNT(*) FROM nodes "
    "WHERE nodes.dispatch_id = dispatches.dispatch_id AND nodes.kind <> '{}')"
)


def upgrade() -> None:
    op.execute(_RECOUNT.format("parameter"))


def downgrade() -> None:
    op.execute(_RECOUNT.format("-"))
