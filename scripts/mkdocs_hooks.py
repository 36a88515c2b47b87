"""MkDocs hooks for the docs site (mkdocs.yml ``hooks:``).

- Pages listed in the nav but not written yet are left out of the nav (and said so), so
  that ``mkdocs build --strict`` passes while other pages are still being written.
- docs/cli.md gets the ``--help`` of every command rendered afresh from the CLI
  (scripts/gen_cli_docs.py), so the reference cannot drift from the code.
- A link from a page to a file outside docs/ (``../benchmarks``) cannot work on the
  site; it becomes the path in the repository, as text.
"""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger("mkdocs.hooks.covalent")

SCRIPTS = Path(__file__).resolve().parent
OUTSIDE_LINK = re.compile(r"\[([^\]]+)\]\((\.\./[^)\s]+)\)")


def _present(entry: Any, docs_dir: Path, missing: list[str]) -> Any:
    """The nav entry without pages whose file does not exist (None if nothing is left)."""
    if isinstance(entry, str):
        if "://" in entry or (docs_dir / entry).exists():
            return entry
        missing.append(entry)
        return None
    if isinstance(entry, list):
        kept = [e for e in (_present(item, docs_dir, missing) for item in entry) if e is not None]
        return kept or None
    if isinstance(entry, dict):
        kept_dict = {k: _present(v, docs_dir, missing) for k, v in entry.items()}
        kept_dict = {k: v for k, v in kept_dict.items() if v is not None}
        return kept_dict or None
    return entry


def on_config(config: Any) -> Any:
    missing: list[str] = []
    config["nav"] = _present(config["nav"], Path(config["docs_dir"]), missing)
    if missing:
        log.info("Not in the nav until they are written: %s", ", ".join(missing))
    return config


def _with_cli_reference(markdown: str) -> str:
    """The page with its generated part rendered now (in a process of its own, which
    imports the CLI with plain, fixed-width help)."""
    done = subprocess.run(
        [sys.executable, str(SCRIPTS / "gen_cli_docs.py"), "--filter"],
        input=markdown,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return done.stdout


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if page.file.src_uri == "cli.md":
        markdown = _with_cli_reference(markdown)
    return OUTSIDE_LINK.sub(_as_repository_path, markdown)


def _as_repository_path(link: re.Match[str]) -> str:
    return f"{link.group(1)} (`{link.group(2)[3:]}` in the repository)"
