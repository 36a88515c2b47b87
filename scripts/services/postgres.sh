#!/usr/bin/env bash
# A real, throw-away PostgreSQL server on loopback, for the tests that run the store on
# PostgreSQL (tests/conftest.py: postgres_url) and for trying a team server by hand.
#
#   bash scripts/services/postgres.sh install   # Debian's postgresql (quick when present)
#   bash scripts/services/postgres.sh up        # initdb (first time) + start; prints the URL
#   bash scripts/services/postgres.sh down      # stops the server `up` started (data kept)
#   bash scripts/services/postgres.sh url       # prints the URL of the running server
#   bash scripts/services/postgres.sh destroy   # down, then deletes the folder
#
# Everything lives under $COVALENT_PG_DIR (default /tmp/covalent-pg): data, log, the
# server's own socket folder, the chosen port and the password. The server listens on
# 127.0.0.1 only, on $COVALENT_PG_PORT or, when unset, a free port chosen at the first
# `up` and kept for later ones. Unix-socket logins (as user postgres) are trusted; TCP
# logins need a password (scram-sha-256): the role `covalent` (CREATEDB) gets a random
# one, so the URL printed is a real secret, as on a team server:
#
#   postgresql+psycopg://covalent:<password>@127.0.0.1:<port>/covalent
#
# (the database `covalent` is the role's own; the tests make one database per test).
#
# There is no systemd on the machines this runs on, and initdb/postgres refuse to run as
# root, so both run as the `postgres` user through runuser (the folder is theirs).
set -euo pipefail

DIR=${COVALENT_PG_DIR:-/tmp/covalent-pg}
DEADLINE=${COVALENT_PG_DEADLINE:-60}   # seconds `up` waits for the server to accept
ROLE=covalent

log() { echo "postgres.sh: $*" >&2; }

bindir() {
  local found
  found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$found" ] && [ -x "$found/initdb" ] || return 1
  echo "$found"
}

as_postgres() { runuser -u postgres -- "$@"; }

cmd_install() {
  if bindir >/dev/null; then
    return 0
  fi
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q --no-install-recommends postgresql >/dev/null 2>&1; then
    apt-get update -q
    apt-get install -y -q --no-install-recommends postgresql
  fi
  bindir >/dev/null || { log "postgresql installed but no initdb found"; exit 1; }
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

port() {
  if [ -n "${COVALENT_PG_PORT:-}" ]; then
    echo "$COVALENT_PG_PORT"
  elif [ -s "$DIR/port" ]; then
    cat "$DIR/port"
  else
    free_port
  fi
}

url() {
  echo "postgresql+psycopg://$ROLE:$(cat "$DIR/password")@127.0.0.1:$(cat "$DIR/port")/$ROLE"
}

running() {
  local bin; bin=$(bindir) || return 1
  [ -d "$DIR/data" ] && as_postgres "$bin/pg_ctl" -D "$DIR/data" status >/dev/null 2>&1
}

init_cluster() {
  local bin=$1
  install -d -o postgres -g postgres -m 700 "$DIR" "$DIR/socket"
  chmod 755 "$DIR"   # the tests read the URL as root; the data folder stays 700
  if [ ! -s "$DIR/data/PG_VERSION" ]; then
    rm -rf "$DIR/data"
    as_postgres "$bin/initdb" -D "$DIR/data" -U postgres --auth-local=trust \
      --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$DIR/initdb.log" 2>&1 \
      || { cat "$DIR/initdb.log" >&2; return 1; }
  fi
  [ -s "$DIR/password" ] || python3 -c 'import secrets; print(secrets.token_hex(16))' > "$DIR/password"
  chmod 644 "$DIR/password"
}

accepts() { as_postgres "$1/pg_isready" -q -h "$DIR/socket" -p "$2"; }

cmd_up() {
  local bin p
  bin=$(bindir) || { log "PostgreSQL is not installed; run: $0 install"; exit 1; }
  init_cluster "$bin"
  p=$(port)
  echo "$p" > "$DIR/port"
  if ! running; then
    as_postgres "$bin/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t "$DEADLINE" \
      -o "-p $p -k $DIR/socket -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c synchronous_commit=off -c max_connections=200" \
      start >/dev/null || { tail -n 20 "$DIR/server.log" >&2; exit 1; }
  fi
  local end=$(( $(date +%s) + DEADLINE ))
  until accepts "$bin" "$p"; do
    [ "$(date +%s)" -lt "$end" ] || { log "no answer on port $p after $DEADLINE s"; exit 1; }
    sleep 0.1
  done
  as_postgres "$bin/psql" -q -h "$DIR/socket" -p "$p" -U postgres -d postgres -v ON_ERROR_STOP=1 \
    -c "DO \$\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$ROLE') THEN CREATE ROLE $ROLE LOGIN CREATEDB; END IF; END \$\$;" \
    -c "ALTER ROLE $ROLE PASSWORD '$(cat "$DIR/password")';" >/dev/null
  if [ -z "$(as_postgres "$bin/psql" -tA -h "$DIR/socket" -p "$p" -U postgres -d postgres \
        -c "SELECT 1 FROM pg_database WHERE datname = '$ROLE'")" ]; then
    as_postgres "$bin/createdb" -h "$DIR/socket" -p "$p" -U postgres -O "$ROLE" "$ROLE"
  fi
  log "up on 127.0.0.1:$p (folder $DIR)"
  url
}

cmd_down() {
  local bin; bin=$(bindir) || return 0
  if running; then
    as_postgres "$bin/pg_ctl" -D "$DIR/data" -m fast -w stop >/dev/null
  fi
}

case "${1:-}" in
  install) cmd_install ;;
  up) cmd_up ;;
  down) cmd_down ;;
  url) running && url ;;
  destroy) cmd_down; rm -rf "$DIR" ;;
  *) echo "usage: $0 install|up|down|url|destroy" >&2; exit 2 ;;
esac
