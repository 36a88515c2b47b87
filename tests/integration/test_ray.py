"""RayExecutor on real Ray: an existing two-node cluster, and the server's own local instance.

The module fixture ``ray_cluster`` (``raycluster.py``) starts a head node and a second node
on 127.0.0.1 with ``ray start``, each with one CPU and a custom resource naming it. The
local instance is started by the executors (and servers) under test. Ray is heavy on a
two-core machine (``ray.init`` takes 4-8 s), so the tests are few and share what they can;
they are marked ``ray``.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import covalent as ct
from covalent._errors import ExecutorError
from covalent._wire import blobs
from covalent.executor import _ray_driver as ray_driver
from covalent.executor.executor_plugins import ray as ray_plugin
from covalent.executor.executor_plugins.ray import RayDriver, RayExecutor
from covalent.executor.task import Outcome, Task, load_reply
from covalent.executor.testing import ExecutorConformance, TaskFactory, _talk, drive
from tests.conftest import Home, free_port, home_env, wait_for
from tests.integration.raycluster import (
    RayCluster,
    alive,
    assert_loopback_only,
    descendants,
    listeners,
    ray_cluster,  # noqa: F401  (the module fixture)
)

pytest.importorskip("ray")
pytestmark = pytest.mark.ray

DEADLINE = 180.0
LOCAL = {"local_num_cpus": 2, "local_object_store_memory": 200 * 1024 * 1024}
"""The local instance's settings in these tests: a capped object store."""


@pytest.fixture
def ray_env(ray_cluster: RayCluster, monkeypatch: pytest.MonkeyPatch) -> RayCluster:  # noqa: F811
    """The cluster, with this process's environment able to reach it (its token)."""
    for key, value in ray_cluster.env.items():
        if key != "HOME":
            monkeypatch.setenv(key, value)
    return ray_cluster


# the conformance kit against the existing cluster


class TestRayExecutorConformance(ExecutorConformance):
    concurrency = 2  # two nodes of one CPU each

    @pytest.fixture
    def executor(self, ray_env: RayCluster, tmp_path: Path) -> RayExecutor:
        self.shared_dir = str(tmp_path)
        return RayExecutor(address=ray_env.address)


# electrons on the existing cluster


def _where() -> tuple[str, int]:
    import os

    import ray

    return ray.get_runtime_context().get_node_id(), os.getppid()  # the parent: a raylet


def _exit_hard(code: int) -> None:
    import os

    os._exit(code)


def _probe() -> tuple[str, str, str, str]:
    import os

    import covalent_ray_probe  # installed by the runtime_env's pip
    import probe_helper  # in the runtime_env's working_dir

    return os.environ["PROBE"], probe_helper.WORDS, covalent_ray_probe.WORDS, os.getcwd()


def _both(tasks: TaskFactory, first: RayExecutor, second: RayExecutor) -> list[object]:
    """Run one ``_where`` on each executor at once; tear both down."""

    async def main() -> list[object]:
        try:
            return list(
                await asyncio.gather(
                    first.execute(tasks.task(_where)), second.execute(tasks.task(_where))
                )
            )
        finally:
            await first.teardown()
            await second.teardown()

    return asyncio.run(main())


def test_electrons_run_on_the_nodes_their_resources_name(
    ray_env: RayCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """node_a is the head, node_b the second node; one executor joins as a driver
    ("host:port"), the other through Ray Client ("ray://host:port"), whose first
    connection starts a server process on the head (slow on a loaded machine)."""
    monkeypatch.setattr(ray_plugin, "CONNECT_TIMEOUT", DEADLINE)
    tasks = TaskFactory()
    on_a = RayExecutor(address=ray_env.address, resources={"node_a": 1})
    on_b = RayExecutor(address=ray_env.client_address, resources={"node_b": 1})
    (node_a, raylet_a), (node_b, raylet_b) = map(tasks.output, _both(tasks, on_a, on_b))
    assert node_a != node_b
    assert raylet_a in ray_env.node_pids("head") and raylet_a not in ray_env.node_pids("node")
    assert raylet_b in ray_env.node_pids("node")
    assert_loopback_only(ray_env.all_pids())


def test_infeasible_request_fails_with_rays_reason(ray_env: RayCluster) -> None:
    tasks = TaskFactory()
    executor = RayExecutor(address=ray_env.address, resources={"node_c": 1}, infeasible_timeout=1)
    outcome = drive(executor, lambda ex: ex.execute(tasks.task(_where)))
    assert outcome.status == ct.status.FAILED
    assert "no node of the Ray cluster can run it" in outcome.error
    assert '{"CPU": 1.0, "node_c": 1.0}' in outcome.error and "infeasible" in outcome.error


def test_dying_worker_fails_only_its_electron(ray_env: RayCluster) -> None:
    tasks = TaskFactory()

    async def work(ex: RayExecutor) -> list[object]:
        return list(
            await asyncio.gather(
                ex.execute(tasks.task(_exit_hard, 3)), ex.execute(tasks.task(_where))
            )
        )

    died, fine = drive(RayExecutor(address=ray_env.address), work)
    assert died.status == ct.status.FAILED
    assert "the Ray worker process running it died" in died.error
    assert tasks.output(fine)[1] in ray_env.all_pids()


# packs: alike electrons that come together share a Ray task


def _member(i: int, folder: str, wait: bool = False, die: bool = False) -> tuple[int, str]:
    """A packable electron: it notes each run in ``folder`` (``ran-<i>``), waits for
    ``folder/go`` first with ``wait``, ends its worker process with ``die``."""
    import os
    import sys
    import time

    import ray

    with open(os.path.join(folder, f"ran-{i}"), "a") as f:
        f.write(f"{os.getpid()}\n")
    deadline = time.monotonic() + 120
    while wait and not os.path.exists(os.path.join(folder, "go")):
        assert time.monotonic() < deadline, "nobody said go"
        time.sleep(0.05)
    if die:
        os._exit(3)
    print(f"member {i}")
    print(f"complaint {i}", file=sys.stderr)
    return i, ray.get_runtime_context().get_task_id()


Started = tuple[list[object], list["asyncio.Future[Outcome]"]]


def _start_together(executor: RayExecutor, tasks: list[Task]) -> Started:
    """Start ``tasks`` as the dispatcher does when they are ready at once (one
    ``start_many``): their handles, and futures of their outcomes."""
    loop = asyncio.get_running_loop()
    outcomes: list[asyncio.Future[Outcome]] = [loop.create_future() for _ in tasks]
    handles = executor.start_many([(t, o.set_result) for t, o in zip(tasks, outcomes, strict=True)])
    assert handles is not None
    return list(handles), outcomes


def _ran(folder: Path, i: int) -> int:
    """How many times member ``i`` started."""
    path = folder / f"ran-{i}"
    return len(path.read_text().split()) if path.exists() else 0


@pytest.fixture
def brief_packs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Packs never cut short by their time budget, so that which electrons share a Ray
    task does not depend on the machine's load."""
    monkeypatch.setattr(ray_driver, "PACK_SECONDS", 600.0)


def test_packed_electrons_keep_their_own_outputs(
    ray_env: RayCluster, tmp_path: Path, brief_packs: None
) -> None:
    """Five alike electrons on two slots: packs of 3 and 2 (what the other slot could
    not take anyway), each electron with its own output, stdout and stderr; with
    ``pack=False`` each has a Ray task of its own."""
    tasks = TaskFactory()

    async def work(ex: RayExecutor) -> list[Outcome]:
        _, outcomes = _start_together(ex, [tasks.task(_member, i, str(tmp_path)) for i in range(5)])
        return list(await asyncio.gather(*outcomes))

    outcomes = drive(RayExecutor(address=ray_env.address), work)
    ids = []
    for i, outcome in enumerate(outcomes):
        number, task_id = tasks.output(outcome)
        assert number == i and outcome.stdout == f"member {i}\n"
        assert outcome.stderr == f"complaint {i}\n"
        ids.append(task_id)
    assert ids[0] == ids[1] == ids[2] and ids[3] == ids[4] and ids[0] != ids[3]

    apart = drive(RayExecutor(address=ray_env.address, pack=False), work)
    assert len({tasks.output(o)[1] for o in apart}) == 5


def test_cancelling_a_packed_electron_spares_the_others(
    ray_env: RayCluster, tmp_path: Path, brief_packs: None
) -> None:
    """Member 2 waits in a pack behind member 0, which runs until told to go: cancelling
    member 2 ends that pack's Ray task; member 2 never runs and ends CANCELLED, and
    members 0 and 1 run again on Ray tasks of their own (member 0 a second time)."""
    tasks = TaskFactory()
    folder = str(tmp_path)

    async def work(ex: RayExecutor) -> list[Outcome]:
        members = [tasks.task(_member, i, folder, wait=i == 0) for i in range(5)]
        handles, outcomes = _start_together(ex, members)
        await asyncio.wait_for(asyncio.gather(*outcomes[3:]), DEADLINE)  # the other pack
        await _until(lambda: _ran(tmp_path, 0) == 1)
        handles[2].cancel()  # type: ignore[attr-defined]
        await _until(lambda: _ran(tmp_path, 0) == 2)  # its pack ended; it runs again
        (tmp_path / "go").write_text("")
        return list(await asyncio.gather(*outcomes))

    outcomes = drive(RayExecutor(address=ray_env.address), work)
    assert outcomes[2].status == ct.status.CANCELLED and _ran(tmp_path, 2) == 0
    done = [tasks.output(outcomes[i]) for i in (0, 1, 3, 4)]
    assert [number for number, _ in done] == [0, 1, 3, 4]
    assert done[0][1] != done[1][1]  # apart after the cancel
    assert done[2][1] == done[3][1]  # the other pack, untouched
    assert [_ran(tmp_path, i) for i in range(5)] == [2, 1, 0, 1, 1]


def test_a_packed_electron_that_kills_its_worker_fails_alone(
    ray_env: RayCluster, tmp_path: Path, brief_packs: None
) -> None:
    """Member 1 ends its worker process: its pack fails, its members run again one Ray
    task each, and only member 1 fails, with Ray's reason."""
    tasks = TaskFactory()

    async def work(ex: RayExecutor) -> list[Outcome]:
        members = [tasks.task(_member, i, str(tmp_path), die=i == 1) for i in range(5)]
        _, outcomes = _start_together(ex, members)
        return list(await asyncio.gather(*outcomes))

    outcomes = drive(RayExecutor(address=ray_env.address), work)
    assert outcomes[1].status == ct.status.FAILED
    assert "the Ray worker process running it died" in outcomes[1].error
    assert [tasks.output(outcomes[i])[0] for i in (0, 2, 3, 4)] == [0, 2, 3, 4]
    assert _ran(tmp_path, 1) == 2  # in its pack, then alone


def test_a_pack_past_its_time_budget_runs_the_rest_apart(
    ray_env: RayCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no time budget a pack runs its first two electrons only (the budget counts
    from the end of the first); the rest go one Ray task each, and all complete with
    their own outputs."""
    monkeypatch.setattr(ray_driver, "PACK_SECONDS", 0.0)
    tasks = TaskFactory()

    async def work(ex: RayExecutor) -> list[Outcome]:
        _, outcomes = _start_together(ex, [tasks.task(_member, i, str(tmp_path)) for i in range(5)])
        return list(await asyncio.gather(*outcomes))

    outcomes = drive(RayExecutor(address=ray_env.address), work)
    assert [tasks.output(o)[0] for o in outcomes] == list(range(5))
    ids = [tasks.output(o)[1] for o in outcomes]  # packs of 3 and 2
    assert ids[0] == ids[1] and ids[3] == ids[4] and len(set(ids)) == 3
    assert [_ran(tmp_path, i) for i in range(5)] == [1] * 5


def test_pack_runs_in_order_within_its_budget() -> None:
    """``run_pack_on_ray`` on its own (no Ray needed): each electron's reply in order,
    and no electron started after the budget is spent."""
    tasks = TaskFactory()
    executor = RayExecutor()
    packed = [executor.request(tasks.task(_talk, f"word {i}"))["packed"] for i in range(3)]
    replies = [load_reply(r) for r in ray_driver.run_pack_on_ray(packed, 600.0)]
    assert [r.stdout for r in replies] == [f"out: word {i}\n" for i in range(3)]
    assert [r.stderr for r in replies] == [f"err: word {i}\n" for i in range(3)]
    assert [blobs.loads(r.output or b"") for r in replies] == [f"word {i}" for i in range(3)]
    assert len(ray_driver.run_pack_on_ray(packed, 0.0)) == 2  # from the first's end


def test_pack_sizes_leave_every_slot_work() -> None:
    assert [ray_driver.pack_size(n, 2) for n in (1, 2, 3, 5, 128, 1000)] == [1, 1, 2, 3, 32, 32]
    nodes = [{"CPU": 2.0, "memory": 4e9}, {"CPU": 1.0, "GPU": 1.0}]
    assert ray_driver.slots({"CPU": 1.0}, nodes) == 3
    assert ray_driver.slots({"CPU": 0.5, "memory": 2e9}, nodes) == 2
    assert ray_driver.slots({"CPU": 4.0}, nodes) == 1
    assert ray_driver.packable({"num_cpus": 1, "memory": 10})
    for unsafe in ({"num_gpus": 1}, {"resources": {"a": 1}}, {"runtime_env": {"pip": ["x"]}}):
        assert not ray_driver.packable({"num_cpus": 1, **unsafe})
    assert not ray_driver.packable({"num_cpus": 0})


async def _until(condition: Callable[[], bool]) -> None:
    deadline = asyncio.get_running_loop().time() + DEADLINE
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


def _wheel(folder: Path) -> Path:
    """A wheel of a one-module package, built by hand (pip installs it without an index)."""
    path = folder / "covalent_ray_probe-1.0-py3-none-any.whl"
    info = "covalent_ray_probe-1.0.dist-info"
    files = {
        "covalent_ray_probe.py": 'WORDS = "installed by pip"\n',
        f"{info}/METADATA": "Metadata-Version: 2.1\nName: covalent-ray-probe\nVersion: 1.0\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    with zipfile.ZipFile(path, "w") as wheel:
        for name, text in files.items():
            wheel.writestr(name, text)
        wheel.writestr(f"{info}/RECORD", "".join(f"{n},,\n" for n in [*files, f"{info}/RECORD"]))
    return path


def test_runtime_env_reaches_the_worker(ray_env: RayCluster, tmp_path: Path) -> None:
    working_dir = tmp_path / "project"
    working_dir.mkdir()
    (working_dir / "probe_helper.py").write_text('WORDS = "from the working_dir"\n')
    runtime_env = {
        "env_vars": {"PROBE": "set by Ray"},
        "working_dir": str(working_dir),
        "pip": [str(_wheel(tmp_path))],
    }
    tasks = TaskFactory()
    executor = RayExecutor(address=ray_env.address, runtime_env=runtime_env)
    outcome = drive(executor, lambda ex: ex.execute(tasks.task(_probe)))
    probe, helper, installed, cwd = tasks.output(outcome)
    assert (probe, helper, installed) == ("set by Ray", "from the working_dir", "installed by pip")
    assert cwd != str(working_dir)  # Ray unpacked a copy of it on the node

    missing = RayExecutor(address=ray_env.address, runtime_env={"working_dir": "/no/such/dir"})
    failed = drive(missing, lambda ex: ex.execute(tasks.task(_probe)))
    assert failed.status == ct.status.FAILED
    assert "its runtime_env's local folders could not be uploaded to Ray" in failed.error
    assert "/no/such/dir" in failed.error, failed.error


# the local instance


def _big(size: int) -> bytes:
    return b"x" * size


def _sleep(seconds: float) -> float:
    import time

    time.sleep(seconds)
    return seconds


def test_local_instance_listens_on_loopback_and_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two executors share the server's local instance, which listens on 127.0.0.1 only,
    writes large outputs straight into the blob store, fails its running electrons
    clearly when the cluster goes away, and is gone after the last teardown."""
    monkeypatch.setenv("RAY_gcs_rpc_server_reconnect_timeout_s", "5")  # notice it soon
    tasks = TaskFactory()
    first, second = RayExecutor(**LOCAL), RayExecutor(**LOCAL, num_cpus=0.5)
    big = tasks.task(_big, 2_000_000)
    big.blobs_dir = str(tmp_path / "blobs")

    async def work() -> tuple[set[int], str, object]:
        outcome = await first.execute(big)
        driver = first.driver()
        assert driver is second.driver() and driver.users == 2
        pids = descendants(driver.pid)
        assert_loopback_only(pids)
        session = driver._temp_dir
        assert os.path.isdir(session) and session.startswith("/tmp/")
        assert outcome.output is None and outcome.output_file is not None
        assert Path(outcome.output_file.path).stat().st_size == outcome.output_file.size

        running = asyncio.ensure_future(second.execute(tasks.task(_sleep, 600.0)))
        await asyncio.sleep(1.0)
        gcs = [p for p in pids if Path(f"/proc/{p}/comm").read_text().strip() == "gcs_server"]
        os.kill(gcs[0], 9)
        lost = await asyncio.wait_for(running, DEADLINE)
        await first.teardown()
        await second.teardown()
        return pids, session, lost

    pids, session, lost = asyncio.run(work())
    assert lost.status == ct.status.FAILED, lost
    assert "the connection to the local Ray instance was lost" in lost.error
    wait_for(lambda: not any(alive(p) for p in pids), 60, "the local instance to stop")
    assert not listeners(pids) and not os.path.exists(session)


def test_unreachable_cluster_fails_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ray_plugin, "CONNECT_TIMEOUT", 5.0)
    address = f"127.0.0.1:{free_port()}"
    tasks = TaskFactory()
    expected = f"Could not connect to the Ray cluster at '{address}' within 5 s"
    with pytest.raises(ExecutorError, match=expected):
        drive(RayExecutor(address=address), lambda ex: ex.execute(tasks.task(_where)))


# the executor on its own


def test_module_does_not_import_ray() -> None:
    code = (
        "import sys, covalent as ct; ct.executor.RayExecutor(address='h:1');"
        "from covalent.executor import plugins; plugins.discover();"
        "print('ray' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_short_name_defaults_and_options() -> None:
    executor = RayExecutor(num_cpus=2, num_gpus=0.5, memory=10**9, resources={"gpu_box": 0.5})
    assert executor.short_name() == "ray"
    assert set(ray_plugin._EXECUTOR_PLUGIN_DEFAULTS) <= set(executor.to_dict()["attributes"])
    task = TaskFactory().task(_where)
    assert executor.ray_options(task) == {
        "name": "_where",
        "num_cpus": 2.0,
        "num_gpus": 0.5,
        "max_retries": 0,
        "memory": 10**9,
        "resources": {"gpu_box": 0.5},
    }


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"num_cpus": -1}, "num_cpus must be a number of 0 or more, not -1"),
        ({"memory": "lots"}, "memory must be a number of 0 or more, not 'lots'"),
        ({"resources": ["a"]}, "resources must be a dict"),
        ({"resources": {"CPU": 2}}, "resources cannot name 'CPU'; use num_cpus"),
        ({"resources": {"a": None}}, r"resources\['a'\] must be a number"),
        ({"runtime_env": "pip"}, "runtime_env must be a dict"),
        ({"runtime_env": {"env_vars": {"A": object()}}}, "runtime_env must be plain JSON"),
    ],
)
def test_bad_settings_are_named(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ExecutorError, match=message):
        RayExecutor(**settings)  # type: ignore[arg-type]


def test_driver_is_shared_per_address() -> None:
    async def work() -> tuple[bool, bool, int]:
        first, second = RayDriver.acquire("h:1"), RayDriver.acquire("h:1")
        other = RayDriver.acquire("")
        shared = first is second and first is not other
        await first.release()
        users = second.users
        await second.release()
        await other.release()
        return shared, RayDriver.acquire("h:1") is first, users

    assert asyncio.run(work()) == (True, False, 1)


# through a real server


@ct.electron(executor="ray")
def on_local_ray(x):
    import covalent as ct

    print(f"local ray got {x}")
    return x + 1, ct.get_context().node_name


@ct.electron
def on_pool(x):
    return x * 10


@ct.electron(executor="ray")
def mark_then_sleep(path):
    import os
    import time

    with open(path + ".part", "w") as f:
        f.write(str(os.getpid()))
    os.replace(path + ".part", path)
    time.sleep(600)


def _on_node_b(x):
    import os
    import sys

    print("warning from node_b", file=sys.stderr)
    return x * 2, os.getppid()


@pytest.fixture(scope="module")
def ray_home(
    tmp_path_factory: pytest.TempPathFactory,
    ray_cluster: RayCluster,  # noqa: F811
) -> Iterator[Home]:
    """A server of this module's own, which can reach the cluster and whose local Ray
    instance is small."""
    root = tmp_path_factory.mktemp("ray-server") / "home"
    port = free_port()
    env = {**home_env(root, port), **{k: v for k, v in ray_cluster.env.items() if k != "HOME"}}
    home = Home(root, port, env)
    with open(root / "config" / "covalent.conf", "a") as f:
        f.write("\n[executors.ray]\nlocal_num_cpus = 2\nlocal_object_store_memory = 200000000\n")
    started = home.run("covalent", "start")
    assert started.returncode == 0, started.stderr
    yield home
    home.run("covalent", "stop")


@pytest.fixture
def ray_server(ray_home: Home, monkeypatch: pytest.MonkeyPatch) -> Home:
    for key, value in ray_home.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("COVALENT_SERVER_URL", ray_home.url)
    return ray_home


def test_workflow_mixes_ray_clusters_and_local(ray_server: Home, ray_env: RayCluster) -> None:
    existing = ct.executor.RayExecutor(address=ray_env.address, resources={"node_b": 1})
    remote = ct.electron(_on_node_b, executor=existing)

    @ct.lattice
    def mixed(x):
        doubled = remote(on_pool(x))  # the local pool, then node_b of the existing cluster
        return on_local_ray(doubled[0])  # then the server's own Ray instance

    result = ct.dispatch_sync(mixed)(2)
    assert result.status == ct.status.COMPLETED, result.error
    assert result.result == [41, "on_local_ray"] or result.result == (41, "on_local_ray")
    nodes = {n["node_name"]: n for n in result.get_all_node_results()}
    assert nodes["_on_node_b"]["output"][1] in ray_env.node_pids("node")
    assert nodes["_on_node_b"]["stderr"] == "warning from node_b\n"
    assert nodes["on_local_ray"]["stdout"] == "local ray got 40\n"
    assert nodes["_on_node_b"]["executor"] == "ray"
    assert nodes["on_local_ray"]["executor"] == "ray"
    assert nodes["on_pool"]["executor"] == "local"
    server = descendants(ray_server.server_pid() or 0)
    assert_loopback_only(server - {ray_server.server_pid()})  # its local Ray instance


def test_cancel_stops_an_electron_on_ray(ray_server: Home, tmp_path: Path) -> None:
    marker = tmp_path / "running"

    @ct.lattice
    def sleepy(path):
        return mark_then_sleep(path)

    @ct.lattice
    def quick(x):
        return on_local_ray(x)

    dispatch_id = ct.dispatch(sleepy)(str(marker))
    wait_for(marker.exists, DEADLINE, "the electron to start on the local Ray instance")
    pid = int(marker.read_text())
    ct.cancel(dispatch_id)
    result = ct.get_result(dispatch_id, wait=True)
    assert result.status == ct.status.CANCELLED
    node = next(n for n in result.get_all_node_results() if n["node_name"] == "mark_then_sleep")
    assert node["status"] == ct.status.CANCELLED
    wait_for(lambda: not alive(pid), 60, "the cancelled electron's Ray worker to stop")
    after = ct.dispatch_sync(quick)(1)  # a new worker takes the next electron
    assert after.status == ct.status.COMPLETED and after.result[0] == 2
