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
