"""``covalent start|stop|restart|status|purge|config|db``, plus the dispatch commands
(``ls``, ``show``, ``logs``, ``cancel``, ``rm``: dispatches.py) and ``cluster``.

Expected errors (CovalentError) print one line on stderr and exit with the error's
code (see docs/cli.md); nothing expected shows a Python traceback.
"""

from __future__ import annotations

import shutil
import sys

import tomli_w
import typer

from covalent import __version__, _config
from covalent._api import start_message
from covalent._cli import dispatches, original
from covalent._cli.cache import cache_app
from covalent._cli.cluster import cluster
from covalent._client import service
from covalent._client.http import client_for
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


@app.command()
def start(
    port: int = PORT,
    develop: bool = DEVELOP,
    workers: int = WORKERS,
    threads_per_worker: int = THREADS,
    mem_per_worker: str = MEMORY,
    cluster: bool = CLUSTER,
    ignore_migrations: bool = IGNORE_MIGRATIONS,
    no_triggers: bool = NO_TRIGGERS,
    triggers_only: bool = TRIGGERS_ONLY,
) -> None:
    """Start the server in the background; return once it answers."""
    original.apply_start_flags(
        workers,
        threads_per_worker,
        mem_per_worker,
        cluster,
        ignore_migrations,
        no_triggers,
        triggers_only,
    )
    url, started = service.start(port=port, develop=develop)
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
    """Stop the server, then start it."""
    stop()
    original.apply_start_flags(None, None, None, cluster, False, False, False)
    url, started = service.start(port=port, develop=develop)
    typer.echo(start_message(url, started))


@app.command()
def status() -> None:
    """Say whether the server runs, where, and its database."""
    record = service.running()
    if record is None:
        typer.echo("Covalent server is stopped.")
        return
    typer.echo(f"Covalent server is running at {record['url']}.")
    section = _config.get_value("dispatcher")
    typer.echo(f"Database: {section.get('db_url') or section['db_path']}")
    executors = _served_executors(record["url"])
    if executors:
        typer.echo("Executors:")
        for name, text in executors.items():
            typer.echo(f"  {name}: {text}")


def _served_executors(url: str) -> dict[str, str]:
    """The server's executors by short name (what its health answer says), or none."""
    try:
        answer = client_for(url).health().get("executors")
    except CovalentError:
        return {}
    return dict(answer) if isinstance(answer, dict) else {}


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


@app.command()
def config() -> None:
    """Print the configuration (defaults, file and environment together)."""
    typer.echo(f"# {_config.paths().config_file}")
    typer.echo(tomli_w.dumps(_config.load()), nl=False)


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
    typer.echo(f"The database is up to date ({store.url}, {change}).")


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
dispatches.register(app)  # ls, show, logs, cancel, rm


def main() -> None:
    """The console script: run the app, turning CovalentErrors into one line and a code."""
    try:
        app()
    except CovalentError as e:
        typer.echo(f"Error: {e}", err=True)
        sys.exit(e.exit_code)


if __name__ == "__main__":
    main()
