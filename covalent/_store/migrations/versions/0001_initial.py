"""The first schema: dispatches, nodes, transitions, attempts, blobs.

Revision ID: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "dispatches",
        sa.Column("dispatch_id", sa.String(36), primary_key=True),
        sa.Column("root_dispatch_id", sa.String(36), nullable=False),
        sa.Column("lattice_name", sa.Text, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("start_time", sa.Float),
        sa.Column("end_time", sa.Float),
        sa.Column("node_count", sa.Integer, nullable=False),
        sa.Column("manifest", sa.LargeBinary, nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("result_digest", sa.String(64)),
        sa.Column("error", sa.Text),
        sa.Column("results_dir", sa.Text, nullable=False),
    )
    op.create_index("ix_dispatches_created", "dispatches", ["created_at"])
    op.create_index("ix_dispatches_status", "dispatches", ["status"])
    op.create_table(
        "nodes",
        sa.Column("dispatch_id", sa.String(36), primary_key=True),
        sa.Column("node_id", sa.Integer, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("executor", sa.Text),
        sa.Column("start_time", sa.Float),
        sa.Column("end_time", sa.Float),
        sa.Column("output_digest", sa.String(64)),
        sa.Column("output_repr", sa.Text),
        sa.Column("stdout", sa.Text),
        sa.Column("stderr", sa.Text),
        sa.Column("error", sa.Text),
        sa.Column("attempts", sa.Integer, nullable=False),
    )
    op.create_table(
        "transitions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("dispatch_id", sa.String(36), nullable=False),
        sa.Column("node_id", sa.Integer, nullable=False),
        sa.Column("old", sa.String(32)),
        sa.Column("new", sa.String(32), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("cause", sa.Text),
    )
    op.create_index("ix_transitions_dispatch", "transitions", ["dispatch_id", "node_id"])
    op.create_table(
        "attempts",
        sa.Column("dispatch_id", sa.String(36), primary_key=True),
        sa.Column("node_id", sa.Integer, primary_key=True),
        sa.Column("attempt", sa.Integer, primary_key=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("start_time", sa.Float),
        sa.Column("end_time", sa.Float),
        sa.Column("error", sa.Text),
        sa.Column("stdout", sa.Text),
        sa.Column("stderr", sa.Text),
    )
    op.create_table(
        "blobs",
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("data", sa.LargeBinary),
        sa.Column("path", sa.Text),
    )


def downgrade() -> None:
    for table in ("blobs", "attempts", "transitions", "nodes", "dispatches", "meta"):
        op.drop_table(table)
