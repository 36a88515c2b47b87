"""File transfers: an electron's files are fetched before it runs and sent after it returns.

The `summarize` electron reads two input files and writes a report. Its executor, before
running it, downloads `prices.csv` from a web server (strategy HTTP) and copies
`regions.csv` from a local folder (Shutil); after it returns, it copies the report into a
results folder (Shutil) and uploads it to the web server with PUT (HTTP). The electron
gets `files=[(from_path, to_path), ...]`, one pair per transfer, in order.

So that the example runs anywhere, the "web server" is a small one this script starts on
127.0.0.1 (any server that answers GET, and PUT for uploads, will do), and every folder
is a new temporary one. With these environment variables set, the report also goes to an
SSH host with rsync (strategy Rsync):

    COVALENT_RSYNC_HOST          the host (and COVALENT_RSYNC_PORT, COVALENT_RSYNC_USER,
                                 COVALENT_RSYNC_KEY: a private key file,
                                 COVALENT_RSYNC_KNOWN_HOSTS: a known_hosts file)
    COVALENT_RSYNC_DIR           the folder on the host that receives the report

Run it with `python examples/file_transfer.py`. See docs/file-transfers.md.
"""

import functools
import os
import tempfile
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import covalent as ct
from covalent.fs import FileTransfer, Order, TransferFromRemote, TransferToRemote
from covalent.fs_strategies import Rsync, Shutil


class WebFolder(SimpleHTTPRequestHandler):
    """Serves a folder: GET answers a file, PUT stores one."""

    def do_PUT(self):
        target = Path(self.translate_path(self.path))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format, *args):
        pass


def serve(folder: Path) -> str:
    """Serve ``folder`` on 127.0.0.1 from a thread of this script; return its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(WebFolder, directory=folder))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}"


def summarize(files):
    """Count the rows of both inputs and write a report."""
    (_, prices), (_, regions), (report, _) = files[:3]
    rows = {Path(p).name: len(Path(p).read_text().splitlines()) - 1 for p in (prices, regions)}
    Path(report).write_text("".join(f"{name}: {n} rows\n" for name, n in rows.items()))
    print(f"summarized {', '.join(rows)}")
    return rows


def rsync_target() -> list:
    """A transfer of the report to an SSH host, when COVALENT_RSYNC_HOST is set."""
    host = os.environ.get("COVALENT_RSYNC_HOST")
    if not host:
        return []
    strategy = Rsync(
        user=os.environ.get("COVALENT_RSYNC_USER", ""),
        host=host,
        port=int(os.environ.get("COVALENT_RSYNC_PORT", "22")),
        private_key_path=os.environ.get("COVALENT_RSYNC_KEY"),
        known_hosts=os.environ.get("COVALENT_RSYNC_KNOWN_HOSTS", ""),
    )
    remote = f"{os.environ['COVALENT_RSYNC_DIR']}/report.txt"
    return [TransferToRemote("report.txt", remote, strategy=strategy)]


def build(folder: Path, web: str) -> ct.Lattice:
    """The workflow, with its transfers between ``folder``'s subfolders and ``web``."""
    work, results = folder / "work", folder / "results"
    files = [
        TransferFromRemote(f"{web}/prices.csv", work / "prices.csv"),  # HTTP, from the URL
        FileTransfer(f"file://{folder}/inputs/regions.csv", work / "regions.csv"),  # Shutil
        FileTransfer(work / "report.txt", results / "report.txt", Order.AFTER, Shutil()),
        TransferToRemote(work / "report.txt", f"{web}/reports/report.txt"),  # HTTP PUT
        *rsync_target(),
    ]
    # Relative paths are relative to the electron's working directory.
    step = ct.electron(
        summarize, executor=ct.executor.LocalExecutor(workdir=str(work)), files=files
    )

    @ct.lattice
    def report_prices():
        return step()

    return report_prices


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="covalent-file-transfer-"))
    (folder / "web").mkdir()
    (folder / "web" / "prices.csv").write_text("item,price\napple,1.2\npear,0.8\nplum,2.5\n")
    (folder / "inputs").mkdir()
    (folder / "inputs" / "regions.csv").write_text("region\nnorth\nsouth\n")
    web = serve(folder / "web")

    dispatch_id = ct.dispatch(build(folder, web))()
    print(f"dispatch id: {dispatch_id}")
    result = ct.get_result(dispatch_id, wait=True)
    print(f"status: {result.status}")
    if result.status != ct.status.COMPLETED:
        print(result.error)
        raise SystemExit(1)
    print(f"result: {result.result}")
    print(f"copied to {folder / 'results' / 'report.txt'}:")
    print((folder / "results" / "report.txt").read_text(), end="")
    print(f"uploaded to {web}/reports/report.txt:")
    print((folder / "web" / "reports" / "report.txt").read_text(), end="")


if __name__ == "__main__":
    main()
