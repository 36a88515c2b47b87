"""What a user of the original Covalent brings: its config file, and an executor class
of their own next to the script (the executor how-to's custom executor)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from tests.conftest import Home

ORIGINAL_CONFIG = """\
[sdk]
config_file = "{home}/config/covalent.conf"
log_dir = "{home}/.cache/covalent"
log_level = "warning"
enable_logging = "false"
executor_dir = "{home}/config/executor_plugins"
no_cluster = "true"
exhaustive_postprocess = "false"
multistage_dispatch = "false"
results_dir = "{home}/.cache/covalent/results"
workflow_data_path = "{home}/.local/share/covalent/workflow_data"
task_packing = "false"

[dispatcher]
address = "localhost"
port = {port}
cache_dir = "{home}/.cache/covalent"
results_dir = "{home}/.local/share/covalent/results"
log_dir = "{home}/.cache/covalent"
db_path = "{home}/.local/share/covalent/dispatcher_db.sqlite"
heartbeat_file = "{home}/.cache/covalent/heartbeat"
use_async_dispatcher = "true"
data_uri_filter_policy = "http"

[dask]
cache_dir = "{home}/.cache/covalent"
log_dir = "{home}/.cache/covalent"
mem_per_worker = "auto"
threads_per_worker = 1
num_workers = 2

[workflow_data]
storage_type = "local"
base_dir = "{home}/.local/share/covalent/workflow_data"

[user_interface]
address = "localhost"
port = {port}
dev_port = 49009
log_dir = "{home}/.cache/covalent"

[executors.local]
log_stdout = "stdout.log"
log_stderr = "stderr.log"
cache_dir = "{home}/.cache/covalent"

[executors.remote_executor]
poll_freq = 15
remote_cache = ".cache/covalent"
credentials_file = ""
"""


def test_a_config_file_written_by_the_original_is_read_without_error(home: Home) -> None:
    config = home.root / "config" / "covalent.conf"
    config.write_text(ORIGINAL_CONFIG.format(home=home.root, port=home.port))
    script = home.root / "flow.py"
    script.write_text(
        textwrap.dedent(
            """
            import json
            import covalent as ct

            @ct.electron
            def by_default(x):
                print("default", x)
                return x + 1

            @ct.electron(executor="local")
            def by_name(x):
                return x * 2

            @ct.electron(executor=ct.executor.LocalExecutor())
            def by_instance(x):
                return x - 3

            @ct.lattice
            def flow(x):
                return by_instance(by_name(by_default(x)))

            result = ct.dispatch_sync(flow)(4)
            print(json.dumps({"status": str(result.status), "result": result.result,
                              "error": result.error, "results_dir": result.results_dir}))
            """
        )
    )
    done = home.run("python", str(script), timeout=300)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["status"] == "COMPLETED", answer["error"]
    assert answer["result"] == 7
    # one warning names what is not used, the original's database among it; never opened
    assert "was written by the original Covalent" in done.stderr
    assert "user_interface" in done.stderr and "dispatcher.db_path" in done.stderr
    assert not (home.root / ".local/share/covalent/dispatcher_db.sqlite").exists()
    # the original's relative log files land in the dispatch's results folder
    assert "default 4" in (Path(answer["results_dir"]) / "stdout.log").read_text()
    shown = home.run("covalent", "config")
    assert shown.returncode == 0, shown.stderr


CUSTOM_EXECUTOR = '''
"""A custom executor as Covalent's how-to writes one: a class in the user's own code."""

import os
from pathlib import Path

from covalent.executor import BaseExecutor


class CustomExecutor(BaseExecutor):
    def __init__(self, marker_dir: str = "", **kwargs):
        super().__init__(**kwargs)
        self.marker_dir = marker_dir

    def run(self, function, args, kwargs, task_metadata):
        note = Path(self.marker_dir) / f"run-{task_metadata['node_id']}.json"
        note.write_text(__import__("json").dumps({"pid": os.getpid(), **task_metadata}))
        return function(*args, **kwargs)
'''


def test_an_executor_class_in_a_folder_next_to_the_script_runs_by_instance(
    home: Home, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    (project / "my_executors").mkdir(parents=True)
    (project / "my_executors" / "__init__.py").write_text("")
    (project / "my_executors" / "custom.py").write_text(CUSTOM_EXECUTOR)
    markers = tmp_path / "markers"
    markers.mkdir()
    (project / "flow.py").write_text(
        textwrap.dedent(
            f"""
            import json
            import covalent as ct
            from my_executors.custom import CustomExecutor

            class InScript(CustomExecutor):  # a class of the script itself (__main__)
                pass

            @ct.electron(executor=CustomExecutor(marker_dir={str(markers)!r}))
            def square(x):
                return x * x

            @ct.electron(executor=InScript(marker_dir={str(markers)!r}))
            def negate(x):
                return -x

            @ct.lattice
            def flow(x):
                return negate(square(x))

            result = ct.dispatch_sync(flow)(5)
            print(json.dumps({{"status": str(result.status), "result": result.result,
                              "error": result.error}}))
            """
        )
    )
    done = home.run("python", str(project / "flow.py"), timeout=300)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["status"] == "COMPLETED", answer["error"]
    assert answer["result"] == -25
    notes = [json.loads(p.read_text()) for p in sorted(markers.glob("run-*.json"))]
    assert len(notes) == 2  # run() was called for each electron...
    server = home.server_pid()  # ...never in the server
    assert server is not None and all(n["pid"] != server for n in notes)
    assert {n["node_id"] for n in notes} == {0, 2}  # node 1 is the parameter 5


def test_the_original_command_line_flags_are_accepted(home: Home) -> None:
    port = str(home.port)
    started = home.run(
        "covalent", "start", "-p", port, "-n", "2", "-t", "1", "-m", "2GB", "--no-cluster",
        "--ignore-migrations", "--no-triggers",
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    out = started.stdout
    assert f"Covalent server has started at http://localhost:{port}" in out
    for flag in ("--mem-per-worker", "--no-cluster", "--ignore-migrations", "--no-triggers"):
        assert f"{flag}" in out and "has no effect here" in out
    shown = home.run("covalent", "config").stdout
    assert "n_workers = 2" in shown and "threads_per_worker = 1" in shown  # [executors.dask]
    restarted = home.run("covalent", "restart", "-p", port, "-d", "--no-cluster")
    assert restarted.returncode == 0 and "has started" in restarted.stdout, restarted.stderr
    assert home.run("covalent", "cluster", "--logs").returncode == 0
    current = home.run("covalent", "db", "alembic", "current")
    assert current.returncode == 0 and "(head)" in current.stdout, current.stderr
    deploy = home.run("covalent", "deploy", "up", "awsbatch")
    assert deploy.returncode == 2 and "not part of this covalent" in deploy.stderr
    purged = home.run("covalent", "purge", "-H", "-y")
    assert purged.returncode == 0, purged.stderr
    assert not (home.root / "data").exists() and not (home.root / "config").exists()
