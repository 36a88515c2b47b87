"""Write the `covalent --help` of every command into docs/cli.md.

The part of docs/cli.md between the two GENERATED markers is replaced by the help of
each command, rendered by the CLI itself (plain click formatting, 88 columns), so the
reference never drifts from the code. The docs build (scripts/mkdocs_hooks.py) renders
the same text into the site; `--check` fails when the committed file is stale.

    python scripts/gen_cli_docs.py           # update docs/cli.md
    python scripts/gen_cli_docs.py --check   # exit 1 if docs/cli.md is out of date
    python scripts/gen_cli_docs.py --stdout  # print the generated part
    python scripts/gen_cli_docs.py --filter  # a page on stdin, with the part replaced
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from pathlib import Path
from typing import Any

# Plain help text (no rich boxes), at a fixed width: set before typer is imported.
os.environ["TYPER_USE_RICH"] = "0"
os.environ["COLUMNS"] = "88"
os.environ.pop("TERMINAL_WIDTH", None)

import typer.main  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
CLI_MD = REPO / "docs" / "cli.md"
BEGIN = "<!-- BEGIN GENERATED: scripts/gen_cli_docs.py -->"
END = "<!-- END GENERATED -->"


def commands(group: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command's path, depth first, in the order `covalent --help` lists them.

    (Typer builds on its own copy of click, so groups are found by their ``commands``.)
    """
    found: list[tuple[str, ...]] = []
    for name, command in getattr(group, "commands", {}).items():
        if getattr(command, "hidden", False):
            continue
        found.append((*path, name))
        found.extend(commands(command, (*path, name)))
    return found


def help_text(root: Any, path: tuple[str, ...]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        root.main([*path, "--help"], prog_name="covalent", standalone_mode=False)
    return out.getvalue().rstrip() + "\n"


def render() -> str:
    """The generated part of docs/cli.md."""
    sys.path.insert(0, str(REPO))
    from covalent._cli.main import app  # after the environment above is set

    root = typer.main.get_command(app)
    parts = ["### `covalent`\n", "```text\n" + help_text(root, ()) + "```\n"]
    for path in commands(root):
        parts.append(f"### `covalent {' '.join(path)}`\n")
        parts.append("```text\n" + help_text(root, path) + "```\n")
    return "\n".join(parts)


def replace_generated(document: str, generated: str) -> str:
    head, begin, rest = document.partition(BEGIN)
    _, end, tail = rest.partition(END)
    if not begin or not end:
        raise SystemExit(f"docs/cli.md lacks the markers {BEGIN} ... {END}")
    return f"{head}{BEGIN}\n\n{generated}\n{END}{tail}"


def main(argv: list[str]) -> int:
    generated = render()
    if "--stdout" in argv:
        sys.stdout.write(generated)
        return 0
    if "--filter" in argv:
        sys.stdout.write(replace_generated(sys.stdin.read(), generated))
        return 0
    current = CLI_MD.read_text()
    wanted = replace_generated(current, generated)
    if "--check" in argv:
        if current != wanted:
            print(f"{CLI_MD} is out of date: run python scripts/gen_cli_docs.py", file=sys.stderr)
            return 1
        return 0
    if current != wanted:
        CLI_MD.write_text(wanted)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
