"""Sublattice links, reused outputs, the output cache, and triggers.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dispatches") as table:
        table.add_column(sa.Column("parent_dispatch_id", sa.String(36)))
        table.add_column(sa.Column("parent_node_id", sa.Integer))
    with op.batch_alter_table("nodes") as table:
        table.add_column(sa.Column("sub_dispatch_id", sa.String(36)))
        table.add_column(sa.Column("reused_from", sa.Text))
    op.create_table(
        "cache",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("output_digest", sa.String(64), nullable=False),
        sa.Column("output_repr", sa.Text),
        sa.Column("dispatch_id", sa.String(36), nullable=False),
        sa.Column("node_id", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "triggers",
        sa.Column("trigger_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("dispatch_id", sa.String(36), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("stopped_at", sa.Float),
    )
    op.create_index("ix_triggers_dispatch", "triggers", ["dispatch_id"])
    op.create_table(
        "trigger_firings",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("trigger_id", sa.Integer, nullable=False),
        sa.Column("dispatch_id", sa.String(36), nullable=False),
        sa.Column("fired_at", sa.Float, nullable=False),
    )
    op.create_index("ix_trigger_firings_trigger", "trigger_firings", ["trigger_id"])


def downgrade() -> None:
    op.drop_table("trigger_firings")
    op.drop_table("triggers")
    op.drop_table("cache")
    with op.batch_alter_table("nodes") as table:
        table.drop_column("reused_from")
        table.drop_column("sub_dispatch_id")
    with op.batch_alter_table("dispatches") as table:
        table.drop_column("parent_node_id")
        table.drop_column("parent_dispatch_id")
