"""The file-transfer and lepton examples, run as users run them: as scripts, in a fresh
covalent home, with the server started on demand by the first dispatch."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from tests.conftest import REPO, Home
from tests.integration import sshd as sshd_service
from tests.integration.sshd import Sshd

sshd = sshd_service.sshd  # the session fixture: a real sshd on loopback
DEADLINE = 300.0


def run_example(home: Home, name: str) -> str:
    done = home.run("python", str(REPO / "examples" / name), timeout=DEADLINE)
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert "started it at" in done.stderr  # the server was started on demand
    return done.stdout


def test_file_transfer_example(home: Home, sshd: Sshd, tmp_path: Path) -> None:
    """HTTP and Shutil always; Rsync to the loopback sshd when rsync is installed."""
    remote = tmp_path / "remote"
    if shutil.which("rsync"):
        home.env.update(
            COVALENT_RSYNC_HOST="127.0.0.1",
            COVALENT_RSYNC_PORT=str(sshd.port),
            COVALENT_RSYNC_USER=sshd.username,
            COVALENT_RSYNC_KEY=str(sshd.client_key),
            COVALENT_RSYNC_KNOWN_HOSTS=str(sshd.known_hosts),
            COVALENT_RSYNC_DIR=str(remote),
        )
    out = run_example(home, "file_transfer.py")

    assert "status: COMPLETED" in out
    assert "result: {'prices.csv': 3, 'regions.csv': 2}" in out
    report = "prices.csv: 3 rows\nregions.csv: 2 rows\n"
    assert re.search(r"copied to \S+/results/report.txt:\n" + report, out), out
    assert re.search(r"uploaded to http://127\.0\.0\.1:\d+/reports/report.txt:\n" + report, out)
    if shutil.which("rsync"):
        assert (remote / "report.txt").read_text() == report
    folder = re.search(r"copied to (\S+)/results/report.txt", out)
    assert folder is not None
    shutil.rmtree(folder.group(1), ignore_errors=True)


def test_leptons_example(home: Home) -> None:
    out = run_example(home, "leptons.py")

    assert "status: COMPLETED" in out
    assert re.search(r"^result: 4 words; Linux with \d+ cores; mean 3$", out, re.MULTILINE), out
    assert re.search(r"^machine\(0\): \('Linux', '\d+'\)$", out, re.MULTILINE), out
    assert re.search(r"^word_count\(\d+\): 4$", out, re.MULTILINE), out
    assert "machine's stdout: 'asked " in out
    assert "broken: FAILED" in out
    assert "LeptonError: The command of lepton bash exited with status 3" in out
    assert out.rstrip().endswith("disk quota exceeded")
