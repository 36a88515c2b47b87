"""Covalent's executor plugins from PyPI, unchanged, next to this covalent.

``pip install covalent-ssh-plugin covalent-slurm-plugin`` keeps this covalent, and an
electron runs on each: the SSH plugin through the real sshd fixture, the Slurm plugin
through it too (as its login node) onto the real Slurm, and so does the HPC plugin
(PSI/J's Slurm backend). The cloud plugins import and appear in ``ct.executor`` (their
clouds cannot be reached from here). Everything runs in a venv of its own (see
pypi_venv.py), in scripts with a covalent home of their own, so the rest of the suite
keeps the built-in ``ssh`` and ``slurm``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest

import covalent
from tests.conftest import REPO, Home
from tests.integration import pypi_venv
from tests.integration import sshd as sshd_service
from tests.integration.sshd import Sshd

pytestmark = pytest.mark.pypi_plugins

sshd = sshd_service.sshd
HOST_ALIAS = "covalent-login-node"
"""The plugins connect to port 22 of their host: ~/.ssh/config points this name at the
sshd fixture's port, as a user's config would for a login node."""
SCRIPT_TIMEOUT = 600.0
PARTITION = os.environ.get("COVALENT_SLURM_PARTITION", "debug")


@pytest.fixture(scope="module")
def venv() -> tuple[Path, dict[str, str]]:
    return pypi_venv.plugin_venv()


def run_script(python: Path, home: Home, code: str, **values: Any) -> dict[str, Any]:
    """Run ``code`` (with ``values`` as JSON literals) in the venv and this home; return
    the JSON object its last line prints."""
    header = "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items())
    script = home.root / "script.py"
    script.write_text(header + textwrap.dedent(code))
    env = {**os.environ, **home.env, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [str(python), str(script)],
        capture_output=True,
        text=True,
        env=env,
        cwd=home.root,
        timeout=SCRIPT_TIMEOUT,
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def covalent_cli(python: Path, home: Home, *args: str) -> str:
    env = {**os.environ, **home.env, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [str(python), "-m", "covalent._cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=home.root,
        timeout=120,
    )
    return done.stdout + done.stderr


def login_node(home: Home, sshd: Sshd) -> None:
    """``~/.ssh/config`` of the home: HOST_ALIAS is the sshd fixture."""
    folder = home.root / ".ssh"
    folder.mkdir(mode=0o700, exist_ok=True)
    (folder / "config").write_text(
        f"Host {HOST_ALIAS}\n  HostName 127.0.0.1\n  Port {sshd.port}\n  User {sshd.username}\n"
    )


def test_pip_install_of_the_plugins_keeps_this_covalent(venv: tuple[Path, dict[str, str]]) -> None:
    python, after_first_install = venv
    assert after_first_install["version"] == covalent.__version__
    pypi_venv._pip(python, "install", *pypi_venv.PLUGINS)  # again: satisfied, nothing replaced
    now = pypi_venv.covalent_in(python)
    assert now == {"version": covalent.__version__, "location": str(REPO)}
    check = subprocess.run(
        [str(python), "-c", textwrap.dedent(CHECK_REQUIREMENTS)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=120,
    )
    assert check.returncode == 0, check.stderr
    met = json.loads(check.stdout)
    assert set(met) >= {"covalent-ssh-plugin", "covalent-slurm-plugin", "covalent-hpc-plugin"}
    assert all(met.values()), met  # every plugin's covalent requirement holds (k8s aside)


CHECK_REQUIREMENTS = """
    import json
    from importlib import metadata
    from packaging.requirements import Requirement
    import covalent
    met = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if not name.startswith("covalent-") or name == "covalent-kubernetes-plugin":
            continue
        for text in dist.requires or []:
            requirement = Requirement(text)
            if requirement.name == "covalent":
                met[name] = requirement.specifier.contains(covalent.__version__, prereleases=True)
    print(json.dumps(met))
"""


def test_the_ssh_plugin_runs_an_electron_on_the_sshd(
    venv: tuple[Path, dict[str, str]], home: Home, sshd: Sshd, tmp_path: Path
) -> None:
    python, _ = venv
    login_node(home, sshd)
    logins = sshd.logins()
    answer = run_script(
        python,
        home,
        """
        import json, os
        import covalent as ct
        from covalent_ssh_plugin.ssh import SSHExecutor

        executor = ct.executor.SSHExecutor(
            username=USER, hostname=HOST, ssh_key_file=KEY, python_path=PYTHON,
            remote_cache=CACHE, remote_workdir=WORKDIR,
        )

        @ct.electron(executor=executor)
        def where(x):
            print("hello from the far side")
            ssh = os.environ.get("SSH_CONNECTION", "")
            return {"double": 2 * x, "ssh": ssh, "cwd": os.getcwd()}

        @ct.lattice
        def flow(x):
            return where(x)

        result = ct.dispatch_sync(flow)(21)
        node = result.get_node_result(0)
        print(json.dumps({
            "status": str(result.status), "error": result.error, "result": result.result,
            "stdout": node["stdout"], "same_class": ct.executor.SSHExecutor is SSHExecutor,
        }))
        """,
        USER=sshd.username,
        HOST=HOST_ALIAS,
        KEY=str(sshd.client_key),
        PYTHON=str(python),
        CACHE=str(tmp_path / "ssh-cache"),
        WORKDIR=str(tmp_path / "ssh-work"),
    )
    assert answer["status"] == "COMPLETED", answer["error"]
    assert answer["same_class"]  # ct.executor.SSHExecutor is the plugin's class
    assert answer["result"]["double"] == 42
    assert answer["result"]["ssh"].startswith("127.0.0.1 ")  # it ran in an SSH session
    assert answer["result"]["cwd"] == str(tmp_path / "ssh-work")
    assert "hello from the far side" in answer["stdout"]
    assert sshd.logins() > logins
    status = covalent_cli(python, home, "status")
    assert "ssh: covalent_ssh_plugin.ssh:SSHExecutor" in status
    assert "in place of the built-in, now 'builtin_ssh'" in status


def test_the_slurm_plugin_runs_an_electron_on_slurm_through_a_login_node(
    venv: tuple[Path, dict[str, str]], home: Home, sshd: Sshd, tmp_path: Path
) -> None:
    if shutil.which("sbatch") is None:
        pytest.skip("Slurm is not installed; run `bash scripts/services/slurm.sh install`")
    python, _ = venv
    login_node(home, sshd)
    bashrc = tmp_path / "compute-node.bashrc"  # what a site's bashrc gives a job:
    bashrc.write_text(  # covalent's Python first, and conda (the plugin always activates)
        f'export PATH="{python.parent}:$PATH"\nconda() {{ return 0; }}\n'
    )
    workdir = tmp_path / "slurm-work"
    workdir.mkdir()
    answer = run_script(
        python,
        home,
        """
        import json, os
        import covalent as ct
        from covalent_slurm_plugin.slurm import SlurmExecutor

        executor = SlurmExecutor(
            username=USER, address=HOST, ssh_key_file=KEY, remote_workdir=WORKDIR,
            options={"partition": PARTITION}, bashrc_path=BASHRC, poll_freq=5,
        )

        @ct.electron(executor=executor)
        def job(x):
            print("hello from a Slurm job")
            return {"square": x * x, "job": os.environ.get("SLURM_JOB_ID", "")}

        @ct.lattice
        def flow(x):
            return job(x)

        result = ct.dispatch_sync(flow)(12)
        node = result.get_node_result(0)
        print(json.dumps({
            "status": str(result.status), "error": result.error, "result": result.result,
            "stdout": node["stdout"], "executor": type(executor).__module__,
        }))
        """,
        USER=sshd.username,
        HOST=HOST_ALIAS,
        KEY=str(sshd.client_key),
        WORKDIR=str(workdir),
        PARTITION=PARTITION,
        BASHRC=str(bashrc),
    )
    assert answer["status"] == "COMPLETED", answer["error"]
    assert answer["result"]["square"] == 144
    assert answer["result"]["job"].isdigit()  # it ran as a Slurm job
    assert "hello from a Slurm job" in answer["stdout"]
    assert answer["executor"] == "covalent_slurm_plugin.slurm"
    assert not list(workdir.glob("*.pkl"))  # the plugin's teardown(task_metadata) cleaned up


def test_the_hpc_plugin_submits_through_psij_on_the_login_node(
    venv: tuple[Path, dict[str, str]], home: Home, sshd: Sshd, tmp_path: Path
) -> None:
    if shutil.which("sbatch") is None:
        pytest.skip("Slurm is not installed; run `bash scripts/services/slurm.sh install`")
    python, _ = venv
    login_node(home, sshd)
    workdir = tmp_path / "hpc-work"
    answer = run_script(
        python,
        home,
        """
        import json
        import covalent as ct

        executor = ct.executor.HPCExecutor(
            address=HOST, username=USER, ssh_key_file=KEY, instance="slurm",
            launcher="single", remote_python_exe=PYTHON, remote_workdir=WORKDIR,
            job_attributes_kwargs={"queue_name": PARTITION, "duration": 10},
        )

        @ct.electron(executor=executor)
        def cube(x):
            return x ** 3

        @ct.lattice
        def flow(x):
            return cube(x)

        result = ct.dispatch_sync(flow)(3)
        print(json.dumps({"status": str(result.status), "error": result.error,
                          "result": result.result}))
        """,
        USER=sshd.username,
        HOST=HOST_ALIAS,
        KEY=str(sshd.client_key),
        PYTHON=str(python),
        WORKDIR=str(workdir),
        PARTITION=PARTITION,
    )
    assert answer["status"] == "COMPLETED", answer["error"]
    assert answer["result"] == 27


def test_the_cloud_plugins_import_and_appear_in_ct_executor(
    venv: tuple[Path, dict[str, str]], home: Home
) -> None:
    python, _ = venv
    answer = run_script(
        python,
        home,
        """
        import json
        import covalent as ct
        from covalent.executor import plugins
        found = plugins.discover()
        print(json.dumps({
            "names": sorted(dir(ct.executor)),
            "classes": {k: p.class_path for k, p in found.items()},
        }))
        """,
    )
    for name in (
        "AWSBatchExecutor",
        "AzureBatchExecutor",
        "BraketExecutor",
        "ECSExecutor",
        "GCPBatchExecutor",
        "HPCExecutor",
        "KubernetesExecutor",
        "SSHExecutor",
        "SlurmExecutor",
        "LocalExecutor",
        "DaskExecutor",
    ):
        assert name in answer["names"]
    classes = answer["classes"]
    assert classes["braket"] == "covalent_braket_plugin.braket:BraketExecutor"  # lower-case name
    assert classes["hpc"] == "covalent_hpc_plugin.hpc:HPCExecutor"
    assert classes["builtin_ssh"] == "covalent.executor.executor_plugins.ssh:SSHExecutor"
    assert classes["builtin_slurm"] == "covalent.executor.executor_plugins.slurm:SlurmExecutor"
