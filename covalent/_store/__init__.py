"""The store: dispatches, nodes, transitions and blobs, in SQLite (WAL) by default."""
