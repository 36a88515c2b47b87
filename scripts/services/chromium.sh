#!/usr/bin/env bash
# Debian's Chromium for the web UI's browser tests (tests/ui), driven by Playwright.
#
#   bash scripts/services/chromium.sh install   install chromium (quick when present)
#   bash scripts/services/chromium.sh check     exit 0 when /usr/bin/chromium is there
#
# Playwright's own browser download (`playwright install`) is never used: the tests
# launch this binary with executable_path="/usr/bin/chromium". Installing needs root
# (CI and the developers' machines run as root); elsewhere it says what to install and
# exits 1.
set -euo pipefail

CHROMIUM=/usr/bin/chromium

install_chromium() {
    if [ -x "$CHROMIUM" ]; then
        return 0
    fi
    if [ "$(id -u)" != 0 ]; then
        echo "chromium.sh: $CHROMIUM is missing; install Debian's chromium package as root" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    # A fresh machine has no package lists yet; try the install first so that a
    # machine with lists does not pay for an update.
    if ! apt-get install -y --no-install-recommends chromium >/dev/null 2>&1; then
        apt-get update -qq
        apt-get install -y --no-install-recommends chromium >/dev/null
    fi
    "$CHROMIUM" --version 2>/dev/null | sed -n 1p
}

case "${1:-install}" in
    install) install_chromium ;;
    check) [ -x "$CHROMIUM" ] ;;
    *) echo "usage: $0 install|check" >&2; exit 2 ;;
esac
