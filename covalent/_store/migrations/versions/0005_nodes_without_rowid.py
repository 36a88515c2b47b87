"""On SQLite, the node rows are kept in the order of their key, without a rowid.

A table with a text primary key has, in SQLite, a hidden integer rowid and a separate
index of the key (``sqlite_autoindex_nodes_1``): each node's dispatch id (36 bytes) and
node id are stored twice, in two B-trees written on every insert. A ``WITHOUT ROWID``
table is that index alone, with the rest of the row in it
(https://www.sqlite.org/withoutrowid.html): 55 bytes less per node, one B-tree fewer to
write. Node rows are small (a long stdout is kept in a file, not the row), which is
where SQLite recommends it. PostgreSQL keeps its tables as heaps: nothing to change.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_COLUMNS = (
    "dispatch_id, node_id, name, kind, status, executor, start_time, end_time, "
    "output_digest, output_repr, stdout, stderr, error, attempts, sub_dispatch_id, "
    "reused_from"
)

_TABLE = """CREATE TABLE nodes_rebuilt (
    dispatch_id VARCHAR(36) NOT NULL,
    node_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    kind VARCHAR(16) NOT NULL,
    status VARCHAR(32) NOT NULL,
    executor TEXT,
    start_time FLOAT,
    end_time FLOAT,
    output_digest VARCHAR(64),
    output_repr TEXT,
    stdout TEXT,
    stderr TEXT,
    error TEXT,
    attempts INTEGER NOT NULL,
    sub_dispatch_id VARCHAR(36),
    reused_from TEXT,
    PRIMARY KEY (dispatch_id, node_id)
){}"""


def _rebuild(options: str) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute(_TABLE.format(options))
    op.execute(f"INSERT INTO nodes_rebuilt ({_COLUMNS}) SELECT {_COLUMNS} FROM nodes")
    op.execute("DROP TABLE nodes")
    op.execute("ALTER TABLE nodes_rebuilt RENAME TO nodes")


def upgrade() -> None:
    _rebuild(" WITHOUT ROWID")


def downgrade() -> None:
    _rebuild("")
