"""Take the web UI's screenshots for the docs (docs/images/ui-*.png).

    python scripts/screenshots.py [--out docs/images]

Starts a server in a temporary home on a free port, runs a few workflows (the seed among
them), and photographs each page with Debian's Chromium driven by Playwright (install it
with `bash scripts/services/chromium.sh install`). The server is stopped and the home
deleted at the end.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import Page, expect, sync_playwright

REPO = Path(__file__).resolve().parent.parent
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 800}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def use_home(root: Path, port: int) -> None:
    """Point this process (and the server it starts) at a home of its own."""
    for name, sub in [("CONFIG", "config"), ("DATA", "data"), ("CACHE", "cache")]:
        os.environ[f"COVALENT_{name}_DIR"] = str(root / sub)
    (root / "config").mkdir(parents=True)
    (root / "config" / "covalent.conf").write_text(f"[dispatcher]\nport = {port}\n")
    os.environ["COVALENT_SERVER_URL"] = f"http://localhost:{port}"
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPO), os.environ.get("PYTHONPATH")])
    )


def covalent(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "covalent._cli.main", *args], check=True)


def run_workflows(gate: Path) -> dict[str, str]:
    """Dispatch the workflows shown; return their ids by role."""
    import covalent as ct

    executor1 = ct.executor.LocalExecutor()

    @ct.electron(executor=executor1)
    def identity(x):
        return x

    @ct.electron(executor="local")
    def square(x):
        print(f"squaring {x}")
        return x * x

    @ct.lattice
    def workflow(a):
        val_1 = identity(x=a)
        return square(x=val_1)

    @ct.electron
    def load_data(n):
        return list(range(n))

    @ct.electron
    def simulate(data, seed):
        import random
        import time

        time.sleep(random.Random(seed).uniform(0.3, 1.5))
        return sum(data) * seed

    @ct.electron
    def analyse(results):
        print(f"{len(results)} results")
        return max(results)

    @ct.lattice
    def experiment(n, runs):
        data = load_data(n)
        return analyse([simulate(data, seed=s) for s in range(runs)])

    @ct.electron
    def fetch(url):
        raise ConnectionError(f"cannot reach {url}")

    @ct.electron
    def parse(page):
        return page.upper()

    @ct.lattice
    def scrape(url):
        return parse(fetch(url))

    @ct.electron
    def wait_for_file(path):
        import os
        import time

        while not os.path.exists(path):
            time.sleep(0.05)
        return path

    @ct.lattice
    def long_job(path):
        return parse(wait_for_file(path))

    ids = {
        "seed": ct.dispatch(workflow)(a=2),
        "experiment": ct.dispatch(experiment)(100, 8),
        "failed": ct.dispatch(scrape)("https://example.invalid"),
    }
    for _ in range(3):
        ct.dispatch(workflow)(a=random.randint(1, 9))
    cancelled = ct.dispatch(long_job)(str(gate.with_suffix(".never")))
    for dispatch_id in list(ids.values()):
        ct.get_result(dispatch_id, wait=True)
    ct.cancel(cancelled)
    ct.get_result(cancelled, wait=True)
    ids["running"] = ct.dispatch(long_job)(str(gate))
    experiment.draw(10, 3)
    return ids


def settle(page: Page) -> None:
    page.wait_for_load_state("networkidle")
    page.evaluate("document.fonts.ready")


def shoot(url: str, ids: dict[str, str], out: Path) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport=VIEWPORT)
        expect.set_options(timeout=60_000)

        page.goto(f"{url}/")
        expect(page.locator("#rows tr", has_text="long_job").first).to_contain_text("RUNNING")
        settle(page)
        page.screenshot(path=out / "ui-list.png")

        page.goto(f"{url}/dispatches/{ids['seed']}")
        expect(page.locator("#graph g.node")).to_have_count(2)
        page.get_by_label("Parameters").check()  # hidden at first; the seed's is worth seeing
        expect(page.locator("#graph g.node")).to_have_count(3)
        settle(page)
        page.screenshot(path=out / "ui-graph.png")

        page.locator('#graph g.node[data-id="2"]').click()
        expect(page.locator("#panel #p-source")).to_be_visible()
        settle(page)
        page.screenshot(path=out / "ui-node-panel.png")

        page.goto(f"{url}/dispatches/{ids['experiment']}")
        page.get_by_role("tab", name="Timeline").click()
        expect(page.locator("#timeline g.row")).to_have_count(11)
        settle(page)
        page.screenshot(path=out / "ui-timeline.png")

        page.goto(f"{url}/settings")
        expect(page.locator("#config")).to_contain_text("[dispatcher]")
        settle(page)
        page.screenshot(path=out / "ui-settings.png")

        page.goto(f"{url}/logs")
        expect(page.locator("#log-info")).to_contain_text("server.log")
        settle(page)
        page.screenshot(path=out / "ui-logs.png")
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images")
    out = parser.parse_args().out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="covalent-shots-") as tmp:
        root, port = Path(tmp) / "home", free_port()
        use_home(root, port)
        covalent("start", "--develop")  # debug logging: the log page has something to show
        gate = Path(tmp) / "gate"
        try:
            ids = run_workflows(gate)
            shoot(f"http://localhost:{port}", ids, out)
        finally:
            gate.touch()
            covalent("stop")
    for path in sorted(out.glob("ui-*.png")):
        print(
            f"{path.relative_to(REPO) if path.is_relative_to(REPO) else path}: "
            f"{path.stat().st_size // 1024} KB"
        )


if __name__ == "__main__":
    started = time.monotonic()
    main()
    print(f"done in {time.monotonic() - started:.1f} s")
