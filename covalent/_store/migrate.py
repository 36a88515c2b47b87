"""Bringing a database's schema up to date with Alembic.

A database made before migrations existed (it has the ``dispatches`` table but no
``alembic_version``) is taken to be at revision 0001, the first schema.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect

MIGRATIONS = Path(__file__).parent / "migrations"
FIRST = "0001"


def _config(connection: object) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config(None))


def head() -> str:
    return str(_scripts().get_current_head())


def revisions() -> set[str]:
    return {script.revision for script in _scripts().walk_revisions()}


def current(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Migrate to ``revision``; return the revisions before and after."""
    with engine.begin() as connection:
        config = _config(connection)
        before = MigrationContext.configure(connection).get_current_revision()
        tables = set(inspect(connection).get_table_names())
        if before is None and "dispatches" in tables:
            command.stamp(config, FIRST)
            before = FIRST
        command.upgrade(config, revision)
        after = MigrationContext.configure(connection).get_current_revision()
    return before, after


def downgrade(engine: Engine, revision: str) -> None:
    """Migrate back to ``revision`` (for a covalent that knows only revisions up to it)."""
    with engine.begin() as connection:
        command.downgrade(_config(connection), revision)
