"""A venv with Covalent's executor plugins from PyPI, next to this covalent.

The plugins register the short names ``ssh`` and ``slurm``, which replace the built-ins
wherever they are installed, so they never go into the Python that runs the suite:
:func:`plugin_venv` makes a venv of its own (``--system-site-packages``, so it has
covalent's dependencies), installs this checkout into it (``pip install -e``), then the
plugins with plain ``pip install``, as a user would. The venv is kept in a cache folder
(``COVALENT_TEST_CACHE``, else ``~/.cache/covalent-tests``) under a name derived from
what it holds, so the downloads happen once per machine; each session installs this
checkout into it again.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import REPO

PLUGINS = ["covalent-ssh-plugin==0.24.1", "covalent-slurm-plugin==0.18.0"]
"""What the issue's "done when" installs with plain pip next to this covalent."""
HPC = ["covalent-hpc-plugin==0.0.8"]
CLOUD = [
    "covalent-awsbatch-plugin==0.42.0",
    "covalent-ecs-plugin==0.32.0",
    "covalent-gcpbatch-plugin==0.15.0",
    "covalent-azurebatch-plugin==0.17.0",
    "covalent-braket-plugin==0.13.0.post1",
]
K8S = "covalent-kubernetes-plugin==0.1.0"
"""Pins ``covalent==0.177.0``, which no newer covalent meets: installed with --no-deps,
its libraries beside it (``urllib3<2`` for the botocore the AWS plugins pin)."""
K8S_LIBRARIES = ["kubernetes", "docker", "toml", "urllib3<2"]
INSTALL_TIMEOUT = 1500.0

CACHE = Path(os.environ.get("COVALENT_TEST_CACHE") or Path.home() / ".cache" / "covalent-tests")


def _key() -> str:
    what = [sys.version, PLUGINS, HPC, CLOUD, K8S, K8S_LIBRARIES]
    return hashlib.sha256(json.dumps(what).encode()).hexdigest()[:12]


def _pip(python: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(python), "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    if done.returncode != 0:
        raise AssertionError(f"pip {' '.join(args)} failed:\n{done.stdout[-4000:]}\n{done.stderr}")
    return done


def covalent_in(python: Path) -> dict[str, str]:
    """The covalent distribution the venv's pip sees: version and where it lives."""
    shown = _pip(python, "show", "covalent").stdout
    fields = dict(line.split(": ", 1) for line in shown.splitlines() if ": " in line)
    location = fields.get("Editable project location") or fields.get("Location", "")
    return {"version": fields.get("Version", ""), "location": location}


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def plugin_venv() -> tuple[Path, dict[str, str]]:
    """The venv's Python, and covalent as pip saw it right after ``pip install`` of the
    ssh and slurm plugins (the first time; from a note of it afterwards)."""
    folder = CACHE / f"pypi-plugins-{_key()}"
    python = folder / "bin" / "python"
    note = folder / "covalent-after-plugins.json"
    with _locked(CACHE / f"pypi-plugins-{_key()}.lock"):
        if not note.exists():
            subprocess.run(
                [sys.executable, "-m", "venv", "--clear", "--system-site-packages", str(folder)],
                check=True,
                timeout=300,
            )
            _pip(python, "install", "--no-deps", "-e", str(REPO))
            _pip(python, "install", *PLUGINS)  # plain pip, with dependencies
            after = covalent_in(python)
            _pip(python, "install", *HPC, *CLOUD)
            _pip(python, "install", "--no-deps", K8S)
            _pip(python, "install", *K8S_LIBRARIES)
            note.write_text(json.dumps(after))
        else:
            _pip(python, "install", "--no-deps", "-e", str(REPO))  # this checkout
    return python, json.loads(note.read_text())
