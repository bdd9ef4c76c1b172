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
