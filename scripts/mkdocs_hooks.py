"""MkDocs hooks for the docs site (mkdocs.yml ``hooks:``).

- docs/cli.md gets the ``--help`` of every command rendered afresh from the CLI
  (scripts/gen_cli_docs.py), so the reference cannot drift from the code.
- A link from a page to a file outside docs/ (``../benchmarks``) cannot work on the
  site; it becomes the path in the repository, as text.

The nav is left as mkdocs.yml has it: a page it names that does not exist stops the
strict build (mkdocs's own ``validation.nav.not_found``), so a deleted page is caught.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

SCRIPTS = Path(__file__).resolve().parent
OUTSIDE_LINK = re.compile(r"\[([^\]]+)\]\((\.\./[^)\s]+)\)")


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
