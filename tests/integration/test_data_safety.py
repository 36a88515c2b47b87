"""Large outputs bypass the server's memory; a full disk fails the node, not the server."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import covalent as ct
from tests.conftest import Home


@ct.electron
def big(size):
    return b"x" * size


@ct.electron
def length(data):
    return len(data)


@ct.electron
def small(x):
    return x + 1


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_a_1_gb_output_never_passes_through_the_server(home: Home) -> None:
    assert home.run("covalent", "start").returncode == 0

    @ct.lattice
    def flow(size):
        return length(big(size))

    result = ct.dispatch_sync(flow)(1_000_000_000)
    assert result.status == ct.status.COMPLETED, result.error
    assert result.result == 1_000_000_000
    pid = home.server_pid()
    assert pid is not None
    assert _peak_rss_mb(pid) < 300
    stored = list((home.root / "data" / "blobs").rglob("*"))
    assert any(p.is_file() and p.stat().st_size > 1_000_000_000 for p in stored)


@pytest.fixture
def tiny_disk(tmp_path: Path):
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_fails_the_node_and_keeps_the_store_consistent(
    home: Home, tiny_disk: Path
) -> None:
    config = home.root / "config" / "covalent.conf"
    config.write_text(config.read_text() + f'blobs_dir = "{tiny_disk}"\n')
    assert home.run("covalent", "start").returncode == 0

    @ct.lattice
    def flow(size):
        return length(big(size)), small(1)

    result = ct.dispatch_sync(flow)(40_000_000)
    assert result.status == ct.status.FAILED
    nodes = {n["node_name"]: n for n in result.get_all_node_results()}
    assert "could not be stored" in nodes["big"]["error"]
    assert "No space left on device" in nodes["big"]["error"]
    assert nodes["length"]["status"] == ct.status.NOT_RUN
    assert nodes["small"]["output"] == 2
    assert not [p for p in tiny_disk.rglob("*") if p.is_file()]  # no partial blob left

    @ct.lattice
    def later(x):
        return small(x)

    assert ct.dispatch_sync(later)(5).result == 6  # the server goes on
