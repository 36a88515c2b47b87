"""The database schema (SQLAlchemy Core). Times are UNIX seconds (floats, UTC)."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

SCHEMA_VERSION = 1

metadata = MetaData()

meta = Table(
    "meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

dispatches = Table(
    "dispatches",
    metadata,
    Column("dispatch_id", String(36), primary_key=True),
    Column("root_dispatch_id", String(36), nullable=False),
    Column("lattice_name", Text, nullable=False),
    Column("status", String(32), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("start_time", Float),
    Column("end_time", Float),
    Column("node_count", Integer, nullable=False),
    Column("manifest", LargeBinary, nullable=False),  # see covalent/_store/manifests.py
    Column("summary", Text, nullable=False),  # JSON: lattice name/doc/function, inputs
    Column("result_digest", String(64)),
    Column("error", Text),
    Column("results_dir", Text, nullable=False),
    Column("parent_dispatch_id", String(36)),  # a sublattice's dispatch: its parent node
    Column("parent_node_id", Integer),
    Index("ix_dispatches_created", "created_at"),
    Index("ix_dispatches_status", "status"),
)

nodes = Table(
    "nodes",
    metadata,
    Column("dispatch_id", String(36), primary_key=True),
    Column("node_id", Integer, primary_key=True),
    Column("name", Text, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("status", String(32), nullable=False),
    Column("executor", Text),
    Column("start_time", Float),
    Column("end_time", Float),
    Column("output_digest", String(64)),
    Column("output_repr", Text),
    Column("stdout", Text),
    Column("stderr", Text),
    Column("error", Text),
    Column("attempts", Integer, nullable=False, default=0),
    Column("sub_dispatch_id", String(36)),  # a sublattice node: the dispatch it runs
    Column("reused_from", Text),  # "dispatch_id:node_id" whose stored output it reused
)

transitions = Table(
    "transitions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dispatch_id", String(36), nullable=False),
    Column("node_id", Integer, nullable=False),  # -1: the dispatch itself
    Column("old", String(32)),
    Column("new", String(32), nullable=False),
    Column("at", Float, nullable=False),
    Column("cause", Text),
    Index("ix_transitions_dispatch", "dispatch_id", "node_id"),
)

attempts = Table(
    "attempts",
    metadata,
    Column("dispatch_id", String(36), primary_key=True),
    Column("node_id", Integer, primary_key=True),
    Column("attempt", Integer, primary_key=True),
    Column("status", String(32), nullable=False),
    Column("start_time", Float),
    Column("end_time", Float),
    Column("error", Text),
    Column("stdout", Text),
    Column("stderr", Text),
)

cache = Table(
    "cache",
    metadata,
    Column("key", String(64), primary_key=True),  # function, inputs and settings digest
    Column("output_digest", String(64), nullable=False),
    Column("output_repr", Text),
    Column("dispatch_id", String(36), nullable=False),
    Column("node_id", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
)

blobs = Table(
    "blobs",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("size", Integer, nullable=False),
    Column("data", LargeBinary),  # small blobs inline; large ones as files
    Column("path", Text),
)

triggers = Table(
    "triggers",
    metadata,
    Column("trigger_id", Integer, primary_key=True, autoincrement=True),
    Column("dispatch_id", String(36), nullable=False),  # whose stored manifest it re-submits
    Column("kind", String(16), nullable=False),
    Column("spec", Text, nullable=False),  # JSON, as in the manifest's "triggers"
    Column("created_at", Float, nullable=False),
    Column("stopped_at", Float),  # NULL while active
    Index("ix_triggers_dispatch", "dispatch_id"),
)

trigger_firings = Table(
    "trigger_firings",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("trigger_id", Integer, nullable=False),
    Column("dispatch_id", String(36), nullable=False),  # the dispatch the firing made
    Column("fired_at", Float, nullable=False),
    Index("ix_trigger_firings_trigger", "trigger_id"),
)
