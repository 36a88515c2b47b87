"""One lattice, five executors: local worker processes, Dask, Ray, an SSH host and Slurm.

Each `square_*` electron runs on its own executor and says where it ran; `total` adds
their outputs up on the local pool. Where the executors point comes from environment
variables (each optional; unset ones keep the executor's own default):

    COVALENT_DASK_SCHEDULER      an existing Dask scheduler, e.g. tcp://10.0.0.5:8786
                                 (unset: the covalent server's own local Dask cluster)
    COVALENT_RAY_ADDRESS         an existing Ray cluster, e.g. ray://10.0.0.5:10001
                                 (unset: the covalent server's own local Ray instance)
    COVALENT_SSH_HOST            the SSH host (unset: localhost)
    COVALENT_SSH_PORT, COVALENT_SSH_USER, COVALENT_SSH_KEY, COVALENT_SSH_KNOWN_HOSTS
    COVALENT_SSH_PYTHON          the host's Python, with covalent installed
    COVALENT_SSH_WORKDIR, COVALENT_SSH_REMOTE_CACHE   folders on the host
    COVALENT_SLURM_ADDRESS       a login node to submit from over SSH
                                 (unset: `sbatch` on this machine)
    COVALENT_SLURM_USER, COVALENT_SLURM_KEY, COVALENT_SLURM_PYTHON, COVALENT_SLURM_WORKDIR
    COVALENT_SLURM_PARTITION     the partition the jobs go to (unset: Slurm's default)
    SLURM_CONF                   passed on to Slurm's commands and the jobs when set

Run it with `python examples/mixed_executors.py`; it prints the dispatch id, each
node's executor and output, and the result. See docs/executors-*.md for each executor.
"""

import os
import socket
import sys

import covalent as ct


def from_env(**variables: str) -> dict:
    """``{setting: value}`` for each ``setting=VARIABLE`` whose variable is set."""
    return {name: os.environ[var] for name, var in variables.items() if os.environ.get(var)}


local = ct.executor.LocalExecutor()

dask = ct.executor.DaskExecutor(**from_env(scheduler_address="COVALENT_DASK_SCHEDULER"))

ray = ct.executor.RayExecutor(**from_env(address="COVALENT_RAY_ADDRESS"))

ssh = ct.executor.SSHExecutor(
    **{
        "hostname": "localhost",
        **from_env(
            hostname="COVALENT_SSH_HOST",
            port="COVALENT_SSH_PORT",
            username="COVALENT_SSH_USER",
            ssh_key_file="COVALENT_SSH_KEY",
            known_hosts="COVALENT_SSH_KNOWN_HOSTS",
            python_path="COVALENT_SSH_PYTHON",
            remote_workdir="COVALENT_SSH_WORKDIR",
            remote_cache="COVALENT_SSH_REMOTE_CACHE",
        ),
    }
)

slurm = ct.executor.SlurmExecutor(
    **from_env(
        address="COVALENT_SLURM_ADDRESS",
        username="COVALENT_SLURM_USER",
        ssh_key_file="COVALENT_SLURM_KEY",
        python_path="COVALENT_SLURM_PYTHON",
        remote_workdir="COVALENT_SLURM_WORKDIR",
    ),
    options=from_env(partition="COVALENT_SLURM_PARTITION"),
    env=from_env(SLURM_CONF="SLURM_CONF"),
)


def where() -> str:
    """The host and process this runs in, and the marks Dask, Ray, SSH and Slurm leave."""
    marks = [f"{socket.gethostname()} pid {os.getpid()}"]
    try:
        from distributed import get_worker

        marks.append(f"Dask worker {get_worker().address}")
    except (ImportError, ValueError):  # not installed there, or not in a Dask worker
        pass
    ray_module = sys.modules.get("ray")  # imported already in a Ray worker
    if ray_module is not None and ray_module.is_initialized():
        marks.append(f"Ray node {ray_module.get_runtime_context().get_node_id()[:12]}")
    if os.environ.get("SSH_CONNECTION"):
        marks.append("over SSH")
    if os.environ.get("SLURM_JOB_ID"):
        marks.append(f"Slurm job {os.environ['SLURM_JOB_ID']}")
    return ", ".join(marks)


@ct.electron(executor=local)
def square_local(x):
    return x * x, where()


@ct.electron(executor=dask)
def square_dask(x):
    return x * x, where()


@ct.electron(executor=ray)
def square_ray(x):
    return x * x, where()


@ct.electron(executor=ssh)
def square_ssh(x):
    return x * x, where()


@ct.electron(executor=slurm)
def square_slurm(x):
    return x * x, where()


@ct.electron(executor="local")
def total(squares):
    return sum(value for value, _ in squares)


@ct.lattice
def mixed(x):
    squares = [square_local(x), square_dask(x + 1), square_ray(x + 2)]
    return total([*squares, square_ssh(x + 3), square_slurm(x + 4)])


if __name__ == "__main__":
    dispatch_id = ct.dispatch(mixed)(1)
    print(f"dispatch id: {dispatch_id}")
    result = ct.get_result(dispatch_id, wait=True)
    for node in result.get_all_node_results():
        if not node["node_name"].startswith(":"):  # not the parameter and list nodes
            print(
                f"{node['node_name']}({node['node_id']}) ran on {node['executor']}: "
                f"{node['output']!r}"
            )
    print(f"status: {result.status}")
    print(f"result: {result.result}")
    if result.status != ct.status.COMPLETED:
        print(result.error)
        raise SystemExit(1)
