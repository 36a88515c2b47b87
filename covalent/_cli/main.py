"""``covalent start|stop|restart|status|purge|config|db``, plus the dispatch commands
(``ls``, ``show``, ``logs``, ``cancel``, ``rm``: dispatches.py) and ``cluster``.

Expected errors (CovalentError) print one line on stderr and exit with the error's
code (see docs/cli.md); nothing expected shows a Python traceback.
"""

from __future__ import annotations

import shutil
import sys

import typer

from covalent import __version__, _config
from covalent._api import start_message
from covalent._cli import dispatches, logs, original
from covalent._cli.cache import cache_app
from covalent._cli.cluster import cluster
from covalent._cli.config import config_app
from covalent._cli.status import status
from covalent._cli.triggers import triggers_app
from covalent._client import service
from covalent._errors import CovalentError
from covalent._store.store import Store

app = typer.Typer(
    name="covalent",
    help="Run and manage the covalent dispatcher server.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(cache_app, name="cache")
app.add_typer(config_app, name="config")
app.add_typer(triggers_app, name="triggers")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"covalent {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """covalent: run workflows of electrons on the executors you choose."""


PORT = typer.Option(None, "-p", "--port", help="Port to serve on (saved to the config).")
DEVELOP = typer.Option(False, "-d", "--develop", help="Debug logging.")
WORKERS = typer.Option(
    None, "-n", "--workers", help="Workers of the local Dask cluster (saved to the config)."
)
THREADS = typer.Option(
    None, "-t", "--threads-per-worker", help="Threads per local Dask worker (saved)."
)
MEMORY = typer.Option(None, "-m", "--mem-per-worker", help="(the original's; no effect here)")
CLUSTER = typer.Option(
    None, "--with-cluster/--no-cluster", help="(the original's; the cluster starts on demand)"
)
IGNORE_MIGRATIONS = typer.Option(
    False, "--ignore-migrations", help="(the original's; migrations run at start)"
)
NO_TRIGGERS = typer.Option(False, "--no-triggers", help="(the original's; no effect here)")
TRIGGERS_ONLY = typer.Option(False, "--triggers-only", help="(the original's; no effect here)")

DATABASE_URL_OPTION = typer.Option(
    None,
    "--database-url",
    help="The database to use, e.g. postgresql://user:password@host/db (saved to the "
    "config once the server answers).",
)


@app.command()
def start(
    port: int = PORT,
    develop: bool = DEVELOP,
    database_url: str = DATABASE_URL_OPTION,
    workers: int = WORKERS,
    threads_per_worker: int = THREADS,
    mem_per_worker: str = MEMORY,
    cluster: bool = CLUSTER,
    ignore_migrations: bool = IGNORE_MIGRATIONS,
    no_triggers: bool = NO_TRIGGERS,
    triggers_only: bool = TRIGGERS_ONLY,
) -> None:
    """Start the server in the background; return once it answers.

    `--port` and `--database-url` are saved to the config only once the server answers.
    """
    original.apply_start_flags(
        workers,
        threads_per_worker,
        mem_per_worker,
        cluster,
        ignore_migrations,
        no_triggers,
        triggers_only,
    )
    url, started = service.start(port=port, develop=develop, database_url=database_url)
    typer.echo(start_message(url, started))


@app.command()
def stop() -> None:
    """Stop the server; unfinished dispatches resume on the next start."""
    if service.stop():
        typer.echo("Covalent server has stopped.")
    else:
        typer.echo("Covalent server is not running.")


@app.command()
def restart(
    port: int = PORT,
    develop: bool = DEVELOP,
    cluster: bool = CLUSTER,
) -> None:
    """Stop the server, then start it again.

    It comes back on the database it ran on, even one given only by COVALENT_DATABASE_URL
    in another shell, unless the configuration now names a database.
    """
    kept = service.database_url_to_keep()
    stop()
    original.apply_start_flags(None, None, None, cluster, False, False, False)
    url, started = service.start(port=port, develop=develop, database_url=kept, save_database=False)
    typer.echo(start_message(url, started))


app.command()(status)


@app.command()
def purge(
    yes: bool = typer.Option(False, "-y", "--yes", help="Do not ask for confirmation."),
    hard: bool = typer.Option(
        False, "-H", "--hard", help="Also delete the data folder: the database and outputs."
    ),
) -> None:
    """Stop the server and delete the config and cache folders."""
    where = _config.paths()
    folders = [where.config_dir, where.cache_dir]
    if hard:
        folders += original.hard_purge_folders()
    if not yes:
        listed = "\n".join(f"  {f}" for f in folders)
        typer.confirm(f"This stops the server and deletes:\n{listed}\nGo on?", abort=True)
    service.stop()
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
    typer.echo("Covalent server files have been purged.")


@db_app.command("migrate")
def db_migrate() -> None:
    """Bring the database schema up to date."""
    section = _config.get_value("dispatcher")
    if section.get("db_url"):
        store = Store(section["db_url"], section["blobs_dir"])
    else:
        store = Store.sqlite(section["db_path"], section["blobs_dir"])
    try:
        before, after = store.create_schema()
    finally:
        store.close()
    change = f"revision {after}"
    if before != after:
        change = f"migrated from revision {before} to {after}"
    typer.echo(f"The database is up to date ({store.shown_url}, {change}).")


@db_app.command(
    "alembic",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def db_alembic(context: typer.Context) -> None:
    """Run Alembic (``covalent db alembic current|history|upgrade head|...``) on the database."""
    original.alembic(list(context.args))


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def deploy(context: typer.Context) -> None:
    """(the original's) Provisioning cloud resources is not part of this covalent."""
    typer.echo(f"Error: {original.DEPLOY_MESSAGE}", err=True)
    raise typer.Exit(2)


app.command()(cluster)
dispatches.register(app)  # ls, show, cancel, rm, redispatch
app.command()(logs.logs)


def main() -> None:
    """The console script: run the app, turning CovalentErrors into one line and a code."""
    try:
        app()
    except CovalentError as e:
        typer.echo(f"Error: {e}", err=True)
        sys.exit(e.exit_code)


if __name__ == "__main__":
    main()
