#!/usr/bin/env bash
# rsync for the file-transfer tests (ct.fs_strategies.Rsync over the loopback sshd).
#
#   bash scripts/services/rsync.sh install   install rsync (quick when present)
#   bash scripts/services/rsync.sh check     exit 0 when rsync is on PATH
#
# The same binary is both ends of a transfer: the local client and, started over SSH by
# the tests' own sshd (tests/integration/sshd.py), the remote side. Installing needs root
# (CI and the developers' machines run as root); elsewhere it says what to install and
# exits 1.
set -euo pipefail

install_rsync() {
    if command -v rsync >/dev/null 2>&1; then
        return 0
    fi
    if [ "$(id -u)" != 0 ]; then
        echo "rsync.sh: rsync is missing; install Debian's rsync package as root" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    # A fresh machine has no package lists yet; try the install first so that a
    # machine with lists does not pay for an update.
    if ! apt-get install -y --no-install-recommends rsync >/dev/null 2>&1; then
        apt-get update -qq
        apt-get install -y --no-install-recommends rsync >/dev/null
    fi
    rsync --version | sed -n 1p   # sed reads it all: no SIGPIPE under pipefail
}

case "${1:-install}" in
    install) install_rsync ;;
    check) command -v rsync >/dev/null 2>&1 ;;
    *) echo "usage: $0 install|check" >&2; exit 2 ;;
esac
