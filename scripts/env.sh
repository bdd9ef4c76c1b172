# Shared settings for capstone's scripts. Sourced, not executed.
# shellcheck shell=bash
PGRX_VERSION=0.18.1
PG_WHEEL_VERSIONS=(16.15.0 17.11.0 18.6.0)
PG_MAJORS=(15 16 17 18)
# Outside the repo so a fresh clone reuses the unpacked trees; readable by postgres.
CAPSTONE_CACHE=${CAPSTONE_CACHE:-/opt/capstone}
PG15_CONFIG=/usr/lib/postgresql/15/bin/pg_config

export PATH="$HOME/.cargo/bin:$PATH"

# pg_config for a major version
pg_config_for() {
  case "$1" in
    15) echo "$PG15_CONFIG" ;;
    16|17|18) echo "$CAPSTONE_CACHE/pg/$1/bin/pg_config" ;;
    *) echo "unsupported PostgreSQL major: $1 (supported: ${PG_MAJORS[*]})" >&2; return 1 ;;
  esac
}
pg_bindir_for() { "$(pg_config_for "$1")" --bindir; }

# The PyPI trees' contrib modules (dblink, postgres_fdw) carry a build-time RUNPATH that
# does not exist here, so the server must find the tree's own libpq through the environment;
# otherwise they bind to the system libpq and fail with undefined symbols.
pg_server_env_for() {
  case "$1" in
    16|17|18) echo "LD_LIBRARY_PATH=$CAPSTONE_CACHE/pg/$1/lib" ;;
    *) echo "" ;;
  esac
}

# A directory the server's OS user (postgres) can reach, for data directories, sockets and
# logs: <repo>/target when postgres can enter it, otherwise (a checkout under a 0700 home,
# say) /var/lib/capstone/<hash of the checkout path>, so the README commands work from any
# checkout path. CAPSTONE_SERVER_DIR overrides both.
server_dir_for() { # $1 = repo root
  if [ -n "${CAPSTONE_SERVER_DIR:-}" ]; then
    install -d -m 0755 "$CAPSTONE_SERVER_DIR"; echo "$CAPSTONE_SERVER_DIR"; return
  fi
  local t=$1/target
  mkdir -p "$t"
  if (cd / && sudo -u postgres test -x "$t" -a -r "$t") 2>/dev/null; then echo "$t"; return; fi
  local d
  d=/var/lib/capstone/$(printf '%s' "$1" | sha256sum | cut -c1-12)
  install -d -m 0755 /var/lib/capstone "$d"
  echo "$d"
}

# A throwaway cluster for tests: initdb into DIR/data, start on PORT with DIR as its only
# socket directory, capstone and pg_stat_statements preloaded, log in DIR/server.log.
#   start_test_cluster MAJOR DIR PORT
start_test_cluster() {
  local v=$1 dir=$2 port=$3 bindir
  bindir=$(pg_bindir_for "$v")
  (cd / && sudo -u postgres "$bindir/pg_ctl" -D "$dir/data" -m immediate stop) >/dev/null 2>&1 || true
  rm -rf "$dir"; install -d -o postgres -g postgres "$dir"
  (cd / && sudo -u postgres "$bindir/initdb" -D "$dir/data" --locale=C.UTF-8 -A trust -U postgres) >/dev/null || return 1
  (cd / && sudo -u postgres env $(pg_server_env_for "$v") "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
    -o "-p $port -k $dir -c listen_addresses='' -c shared_preload_libraries='capstone,pg_stat_statements' -c max_worker_processes=32 -c max_prepared_transactions=10 -c wal_level=logical" start) >/dev/null
}
stop_test_cluster() { # MAJOR DIR
  (cd / && sudo -u postgres "$(pg_bindir_for "$1")/pg_ctl" -D "$2/data" -m fast -w stop) >/dev/null 2>&1 || true
}
