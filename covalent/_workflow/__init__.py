"""Authoring workflows: electrons, lattices, and the tracer that turns them into a graph."""
