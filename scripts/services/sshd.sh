#!/usr/bin/env bash
# OpenSSH server for the SSH executor's integration tests.
#
#   bash scripts/services/sshd.sh install   install openssh-server (quick when present)
#   bash scripts/services/sshd.sh check     exit 0 when /usr/sbin/sshd is there
#
# The tests start their own sshd (tests/integration/sshd.py): on 127.0.0.1, on a free
# port, with a config, host key and client key in a temporary folder, so nothing here
# starts a daemon. Installing needs root (CI and the developers' machines run as root);
# elsewhere it says what to install and exits 1.
set -euo pipefail

SSHD=/usr/sbin/sshd

install_sshd() {
    if [ -x "$SSHD" ] && command -v ssh-keygen >/dev/null 2>&1; then
        [ "$(id -u)" != 0 ] || install -d -m 755 /run/sshd
        return 0
    fi
    if [ "$(id -u)" != 0 ]; then
        echo "sshd.sh: $SSHD is missing; install openssh-server as root" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    # A fresh machine has no package lists yet; try the install first so that a
    # machine with lists does not pay for an update.
    if ! apt-get install -y --no-install-recommends openssh-server >/dev/null 2>&1; then
        apt-get update -qq
        apt-get install -y --no-install-recommends openssh-server >/dev/null
    fi
    # Without systemd nobody creates sshd's privilege-separation folder.
    install -d -m 755 /run/sshd
    "$SSHD" -V 2>&1 | sed -n 1p
}

case "${1:-install}" in
    install) install_sshd ;;
    check) [ -x "$SSHD" ] ;;
    *) echo "usage: $0 install|check" >&2; exit 2 ;;
esac
