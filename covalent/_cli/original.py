"""The original Covalent's command-line flags, for scripts that start the server its way.

Each flag either does here what it did there, or, where it has no meaning here, is
accepted with one line saying so (docs/coming-from-covalent.md):

- ``start``/``restart``: ``-n/--workers`` and ``-t/--threads-per-worker`` size the
  server's local Dask cluster (saved as ``executors.dask.n_workers`` /
  ``threads_per_worker``, as ``--port`` is saved); ``-m/--mem-per-worker``,
  ``--no-cluster``/``--with-cluster``, ``--ignore-migrations``, ``--no-triggers`` and
  ``--triggers-only`` are accepted and explained;
- ``purge -H/--hard`` also deletes the data folder (database and stored outputs);
- ``cluster --logs`` prints the server log's lines about the Dask cluster;
- ``db alembic ARGS`` runs Alembic on this covalent's database and migrations;
- ``deploy`` says that provisioning cloud resources is not part of this covalent.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from alembic.config import CommandLine, Config
from sqlalchemy import create_engine

from covalent import _config
from covalent._store import migrate


def apply_start_flags(
    workers: int | None,
    threads_per_worker: int | None,
    mem_per_worker: str | None,
    cluster: bool | None,
    ignore_migrations: bool,
    no_triggers: bool,
    triggers_only: bool,
    say: Callable[[str], Any] = typer.echo,
) -> None:
    """Save what the original's ``start`` flags mean here; one line for each that has
    no meaning here."""
    if workers is not None:
        _config.set_values("executors.dask.n_workers", int(workers))
    if threads_per_worker is not None:
        _config.set_values("executors.dask.threads_per_worker", int(threads_per_worker))
    notes = {
        "--mem-per-worker": (
            mem_per_worker is not None,
            "Dask workers here take their memory limit from Dask's defaults",
        ),
        "--no-cluster/--with-cluster": (
            cluster is not None,
            "the local Dask cluster starts only when a DaskExecutor first needs it",
        ),
        "--ignore-migrations": (
            ignore_migrations,
            "the server brings its database up to date when it starts",
        ),
        "--no-triggers": (no_triggers, "triggers run inside the server and are always on"),
        "--triggers-only": (
            triggers_only,
            "triggers run inside the server, which starts whole",
        ),
    }
    for flag, (given, why) in notes.items():
        if given:
            say(f"{flag} has no effect here: {why}.")


def hard_purge_folders() -> list[Path]:
    """What ``purge --hard`` deletes besides the config and cache folders."""
    return [_config.paths().data_dir]


def dask_log_lines(limit: int = 200) -> list[str]:
    """The server log's last ``limit`` lines about the Dask cluster."""
    path = Path(_config.get_value("dispatcher.log_file"))
    try:
        lines = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return []
    return [line for line in lines if "dask" in line.lower() or "distributed" in line][-limit:]


def alembic(arguments: list[str]) -> None:
    """Run ``alembic ARGUMENTS`` on this covalent's database, with its migrations."""
    section = _config.get_value("dispatcher")
    url = section.get("db_url") or f"sqlite:///{section['db_path']}"
    cli = CommandLine(prog="covalent db alembic")
    options = cli.parser.parse_args(arguments)
    if not hasattr(options, "cmd"):
        cli.parser.error("too few arguments")
    config = Config(cmd_opts=options)
    config.set_main_option("script_location", str(migrate.MIGRATIONS))
    engine = create_engine(url)
    try:
        with engine.begin() as connection:  # migrations/env.py runs on this connection
            config.attributes["connection"] = connection
            cli.run_cmd(config, options)
    finally:
        engine.dispose()


DEPLOY_MESSAGE = (
    "covalent deploy is not part of this covalent: it does not provision cloud resources. "
    "Create them with your cloud's own tools (or the Terraform files a plugin ships), then "
    "give their names to the executor, in its arguments or in the config section "
    "[executors.<short name>] (covalent config set ...)."
)
