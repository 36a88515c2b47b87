"""The ``covalent`` command."""
