#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for gavel's Postgres tests, examples and
# bench: bound to 127.0.0.1 only, on its own port and data directory, with a
# database and a password-authenticated user for the tests. Used by .ci/run
# and by contributors alike.
#
#   scripts/postgres.sh install        apt-get install postgresql when no server binaries are found
#   scripts/postgres.sh start          initdb (first time), start, create the user and the database
#   scripts/postgres.sh stop           fast shutdown
#   scripts/postgres.sh restart [S]    fast shutdown, S seconds down (default 0), start again
#   scripts/postgres.sh status         exit 0 when the server accepts connections
#   scripts/postgres.sh url            print the URL the tests use (GAVEL_TEST_DATABASE_URL)
#   scripts/postgres.sh destroy        stop and remove the data directory
#
# Environment (all optional): GAVEL_PG_PORT (54329), GAVEL_PG_DIR
# (/tmp/gavel-postgres-<port>), GAVEL_PG_USER (gavel), GAVEL_PG_PASSWORD
# (gavel), GAVEL_PG_DATABASE (gavel_test).
#
# PostgreSQL refuses to run as root: run as root, the script runs the server
# as the `postgres` OS user (created by Debian's package) with runuser.
# Superuser access is only through the Unix socket inside the data
# directory's parent (mode 0700); TCP on 127.0.0.1 needs the password.
set -euo pipefail

port="${GAVEL_PG_PORT:-54329}"
base="${GAVEL_PG_DIR:-/tmp/gavel-postgres-$port}"
user="${GAVEL_PG_USER:-gavel}"
password="${GAVEL_PG_PASSWORD:-gavel}"
database="${GAVEL_PG_DATABASE:-gavel_test}"
data="$base/data"
socket="$base/socket"
log="$base/server.log"

die() { echo "postgres.sh: $*" >&2; exit 1; }

# The server's binaries: on PATH, else Debian's versioned directory (highest version).
bindir() {
  if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    dirname "$(command -v pg_ctl)"
    return
  fi
  local found
  found="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
  [ -n "$found" ] && [ -x "$found/pg_ctl" ] || return 1
  echo "$found"
}

# Runs a command as the server's owner: ourselves, or `postgres` when we are root.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || die "running as root needs the 'postgres' OS user (apt-get install postgresql creates it)"
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

install() {
  if bindir >/dev/null && command -v psql >/dev/null 2>&1; then
    echo "postgres.sh: PostgreSQL found in $(bindir)"
    # Server binaries without Debian's package: the OS user the server runs as when we are root.
    if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
      useradd --system --no-create-home --shell /usr/sbin/nologin postgres
    fi
    return
  fi
  local sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  echo "postgres.sh: installing Debian's postgresql"
  # Only our own cluster (127.0.0.1, its own port): not the package's default one on 5432.
  "${sudo_cmd[@]}" mkdir -p /etc/postgresql-common
  echo "create_main_cluster = false" | "${sudo_cmd[@]}" tee /etc/postgresql-common/createcluster.conf >/dev/null
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql
  bindir >/dev/null || die "postgresql installed, but no pg_ctl found"
}

running() {
  local bin
  bin="$(bindir)" || return 1
  [ -f "$data/PG_VERSION" ] && as_owner "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1
}

start_server() {
  local bin="$1"
  as_owner "$bin/pg_ctl" -D "$data" -l "$log" -w -t 60 start \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $socket -c max_connections=200" >/dev/null \
    || { tail -n 30 "$log" >&2 || true; die "the server did not start (log: $log)"; }
}

psql_super() {
  as_owner psql -X -q -v ON_ERROR_STOP=1 -h "$socket" -p "$port" -U postgres -d postgres "$@"
}

start() {
  local bin
  bin="$(bindir)" || die "no PostgreSQL server binaries found: run 'scripts/postgres.sh install' (Debian) or install PostgreSQL"
  command -v psql >/dev/null 2>&1 || die "psql not found"
  if running; then
    echo "postgres.sh: already running on 127.0.0.1:$port"
  else
    mkdir -p "$base" "$socket"
    chmod 0700 "$base"
    [ "$(id -u)" -ne 0 ] || chown -R postgres: "$base"
    if [ ! -f "$data/PG_VERSION" ]; then
      as_owner "$bin/initdb" -D "$data" -U postgres -E UTF8 --locale=C \
        --auth-local=trust --auth-host=scram-sha-256 >"$base/initdb.log" 2>&1 \
        || { cat "$base/initdb.log" >&2; die "initdb failed"; }
    fi
    start_server "$bin"
  fi
  psql_super <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$user') THEN
    CREATE ROLE "$user" LOGIN PASSWORD '$password';
  END IF;
END \$\$;
SELECT format('CREATE DATABASE %I OWNER %I', '$database', '$user')
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$database')
\gexec
SQL
  echo "postgres.sh: running on 127.0.0.1:$port (data: $data); $(url)"
}

stop() {
  local bin
  bin="$(bindir)" || return 0
  if running; then as_owner "$bin/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null; fi
}

restart() {
  local down="${1:-0}" bin
  bin="$(bindir)" || die "no PostgreSQL server binaries found"
  running || die "not running (data: $data)"
  stop
  sleep "$down"
  start_server "$bin"
  echo "postgres.sh: restarted on 127.0.0.1:$port"
}

url() {
  echo "postgresql://$user:$password@127.0.0.1:$port/$database"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  restart) restart "${2:-0}" ;;
  status) running ;;
  url) url ;;
  destroy) stop; rm -rf "$base" ;;
  *) echo "usage: $0 install|start|stop|restart [seconds-down]|status|url|destroy" >&2; exit 2 ;;
esac
