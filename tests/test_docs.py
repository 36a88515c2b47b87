"""The docs site builds with ``mkdocs build --strict``, its CLI reference is the CLI's own
help, and the configuration reference names every configuration key."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from covalent import _config, _errors
from tests.conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))
import mkdocs_hooks  # noqa: E402  (scripts/ is not a package)

sys.path.remove(str(REPO / "scripts"))


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=REPO,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    done = run("-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site"))
    assert done.returncode == 0, done.stderr
    cli = (tmp_path / "site" / "cli" / "index.html").read_text()
    for command in ("ls", "show", "logs", "cancel", "rm", "start", "db migrate"):
        assert f"Usage: covalent {command} [OPTIONS]" in cli
    reference = (tmp_path / "site" / "reference" / "index.html").read_text()
    assert 'id="covalent.get_result"' in reference and "progress" in reference


def test_the_committed_cli_reference_is_up_to_date() -> None:
    done = run("scripts/gen_cli_docs.py", "--check")
    assert done.returncode == 0, done.stderr


def test_every_configuration_key_is_documented() -> None:
    page = (REPO / "docs" / "configuration.md").read_text()
    documented = set(re.findall(r"`((?:sdk|dispatcher)\.[a-z_]+)`", page))
    defaults = _config.defaults()
    keys = {f"{section}.{key}" for section in ("sdk", "dispatcher") for key in defaults[section]}
    assert keys <= documented, keys - documented


def test_a_deleted_page_stops_the_strict_build(tmp_path: Path) -> None:
    """The site's own configuration, on a copy of docs/ without one page that the nav
    names: the strict build fails and names the page."""
    docs = tmp_path / "docs"
    shutil.copytree(REPO / "docs", docs)
    (docs / "file-transfers.md").unlink()
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text())
    config["docs_dir"] = str(docs)
    config["hooks"] = [str(REPO / hook) for hook in config["hooks"]]
    handler = config["plugins"][1]["mkdocstrings"]["handlers"]["python"]
    handler["paths"] = [str(REPO)]
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(config))
    done = run(
        "-m", "mkdocs", "build", "--strict", "-f", str(tmp_path / "mkdocs.yml"),
        "--site-dir", str(tmp_path / "site"),
    )  # fmt: skip
    assert done.returncode != 0
    assert "'file-transfers.md' is included in the 'nav' configuration" in done.stderr, done.stderr


def test_the_exit_code_table_is_the_errors_own() -> None:
    """docs/cli.md's exit codes are the codes the error classes carry (which the CLI's
    tests check each error by)."""
    page = (REPO / "docs" / "cli.md").read_text()
    table = page[page.index("## Exit codes") : page.index("## Reference")]
    rows = re.findall(r"^\| (\d+) \| `(\w+)`", table, re.MULTILINE)
    assert len(rows) >= 9, rows
    for code, name in rows:
        assert getattr(_errors, name).exit_code == int(code), name


def test_links_out_of_the_docs_become_repository_paths() -> None:
    text = "See [the benchmarks](../benchmarks) and [api](api.md)."
    rewritten = mkdocs_hooks.OUTSIDE_LINK.sub(mkdocs_hooks._as_repository_path, text)
    assert rewritten == "See the benchmarks (`benchmarks` in the repository) and [api](api.md)."
