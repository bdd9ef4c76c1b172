#!/usr/bin/env bash
# The lab cluster: a private PostgreSQL server plus a transaction-mode PgBouncer,
# owned by the postgres OS user, living under target/lab/ (or $CAPSTONE_LAB_DIR).
#
#   scripts/lab.sh start     create (first time) and start the cluster and the pooler
#   scripts/lab.sh stop      stop both
#   scripts/lab.sh status    say what runs where
#   scripts/lab.sh psql ...  psql into the lab database (extra args go to psql)
#   scripts/lab.sh install   build capstone (release) and install it into the lab's PostgreSQL tree
#   scripts/lab.sh destroy   stop and delete everything under the lab directory
#   scripts/lab.sh node2 {start|stop|status}
#                            a second cluster of the same major on its own port: the remote
#                            node of the 2-node sharding layout (bench/two_node.sh)
#
# Settings (environment):
#   CAPSTONE_PG        PostgreSQL major for the lab: 15, 16, 17 or 18 (default 17)
#   CAPSTONE_LAB_DIR   where the cluster lives (default <repo>/target/lab)
#   CAPSTONE_LAB_PORT  server port on 127.0.0.1 (default 28815)
#   CAPSTONE_POOL_PORT PgBouncer port on 127.0.0.1 (default 28816)
#   CAPSTONE_NODE2_PORT port of the second node on 127.0.0.1 (default 28817)
# Every subcommand is idempotent: a second start is a no-op that prints where things are.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/env.sh
. "$ROOT/scripts/env.sh"

MAJOR=${CAPSTONE_PG:-17}
# the cluster lives where the postgres OS user can reach it, wherever the checkout is
LAB=${CAPSTONE_LAB_DIR:-$(server_dir_for "$ROOT")/lab}
PORT=${CAPSTONE_LAB_PORT:-28815}
POOL_PORT=${CAPSTONE_POOL_PORT:-28816}
DB=${CAPSTONE_LAB_DB:-capstone_lab}
PGDIR=$LAB/pg$MAJOR
DATA=$PGDIR/data
SOCK=$PGDIR
BOUNCER=$LAB/pgbouncer
NODE2_PORT=${CAPSTONE_NODE2_PORT:-28817}
N2DIR=$LAB/node2-pg$MAJOR
N2DATA=$N2DIR/data
BIN=$(pg_bindir_for "$MAJOR")

as_pg() {
  # runuser/sudo reset the soft open-file limit to 1024; storms need more.
  # from / : the checkout itself may be a directory postgres cannot enter
  (cd / && sudo -u postgres -H bash -c "ulimit -n 20000 2>/dev/null || true; $*")
}

server_running() { [ -f "$DATA/postmaster.pid" ] && as_pg "'$BIN/pg_ctl' -D '$DATA' status" >/dev/null 2>&1; }
bouncer_running() { [ -f "$BOUNCER/pgbouncer.pid" ] && kill -0 "$(cat "$BOUNCER/pgbouncer.pid")" 2>/dev/null; }

init_cluster() {
  install -d -o postgres -g postgres "$LAB" "$PGDIR"
  if [ ! -f "$DATA/PG_VERSION" ]; then
    echo "lab: initdb PostgreSQL $MAJOR in $DATA"
    as_pg "'$BIN/initdb' -D '$DATA' --locale=C.UTF-8 --encoding=UTF8 -A trust -U postgres" >/dev/null
    # Trust on loopback and the private socket only.
    cat > "$DATA/pg_hba.conf" <<HBA
local   all          all                  trust
host    all          all   127.0.0.1/32   trust
local   replication  all                  trust
host    replication  all   127.0.0.1/32   trust
HBA
    cat >> "$DATA/postgresql.conf" <<CONF

# --- capstone lab settings ---
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$SOCK'
max_connections = 100
shared_preload_libraries = 'capstone,pg_stat_statements'
track_io_timing = on
track_functions = 'all'
log_lock_waits = on
deadlock_timeout = '200ms'
log_min_duration_statement = -1
log_autovacuum_min_duration = 0
max_worker_processes = 32
max_prepared_transactions = 10
wal_level = logical
max_wal_size = '4GB'
shared_buffers = '1GB'
work_mem = '16MB'
maintenance_work_mem = '512MB'
pg_stat_statements.track = 'all'
logging_collector = off
CONF
    chown postgres:postgres "$DATA/pg_hba.conf"
  fi
}

write_bouncer() {
  install -d -o postgres -g postgres "$BOUNCER"
  cat > "$BOUNCER/pgbouncer.ini" <<INI
[databases]
* = host=127.0.0.1 port=$PORT

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $POOL_PORT
unix_socket_dir = $BOUNCER
auth_type = trust
auth_file = $BOUNCER/userlist.txt
admin_users = postgres
stats_users = postgres
pool_mode = transaction
max_client_conn = 2000
default_pool_size = 20
reserve_pool_size = 0
server_idle_timeout = 30
ignore_startup_parameters = extra_float_digits,options
log_connections = 0
log_disconnections = 0
logfile = $BOUNCER/pgbouncer.log
pidfile = $BOUNCER/pgbouncer.pid
INI
  echo '"postgres" ""' > "$BOUNCER/userlist.txt"
  chown postgres:postgres "$BOUNCER/pgbouncer.ini" "$BOUNCER/userlist.txt"
}

cmd_start() {
  init_cluster
  if server_running; then
    echo "lab: PostgreSQL $MAJOR already running"
  else
    # Another major's lab cluster would hold the port.
    for other in "$LAB"/pg*/data; do
      [ -f "$other/postmaster.pid" ] || continue
      [ "$other" = "$DATA" ] && continue
      om=$(cat "$other/PG_VERSION"); ob=$(pg_bindir_for "$om")
      echo "lab: stopping PostgreSQL $om lab cluster (port $PORT is shared)"
      as_pg "'$ob/pg_ctl' -D '$other' -m fast -w stop" >/dev/null || true
    done
    echo "lab: starting PostgreSQL $MAJOR on 127.0.0.1:$PORT"
    as_pg "$(pg_server_env_for "$MAJOR") '$BIN/pg_ctl' -D '$DATA' -l '$PGDIR/server.log' -w -t 60 start" >/dev/null
  fi
  as_pg "'$BIN/psql' -X -q -h '$SOCK' -p $PORT -d postgres -tAc \"SELECT 1 FROM pg_database WHERE datname = '$DB'\"" | grep -q 1 \
    || as_pg "'$BIN/createdb' -h '$SOCK' -p $PORT '$DB'"
  write_bouncer
  if bouncer_running; then
    echo "lab: PgBouncer already running"
  else
    echo "lab: starting PgBouncer (transaction mode) on 127.0.0.1:$POOL_PORT"
    as_pg "pgbouncer -d '$BOUNCER/pgbouncer.ini'"
    for _ in $(seq 1 50); do bouncer_running && break; sleep 0.1; done
  fi
  cmd_status
}

cmd_stop() {
  if bouncer_running; then
    kill -INT "$(cat "$BOUNCER/pgbouncer.pid")" 2>/dev/null || true
    for _ in $(seq 1 50); do bouncer_running || break; sleep 0.1; done
    echo "lab: PgBouncer stopped"
  fi
  if server_running; then
    as_pg "'$BIN/pg_ctl' -D '$DATA' -m fast -w stop" >/dev/null
    echo "lab: PostgreSQL $MAJOR stopped"
  else
    echo "lab: PostgreSQL $MAJOR not running"
  fi
}

cmd_status() {
  if server_running; then
    echo "lab: PostgreSQL $MAJOR  running  data=$DATA  log=$PGDIR/server.log"
    echo "     psql -h 127.0.0.1 -p $PORT -U postgres -d $DB"
  else
    echo "lab: PostgreSQL $MAJOR  stopped  data=$DATA"
  fi
  if bouncer_running; then
    echo "lab: PgBouncer       running  pid=$(cat "$BOUNCER/pgbouncer.pid")  config=$BOUNCER/pgbouncer.ini"
    echo "     psql -h 127.0.0.1 -p $POOL_PORT -U postgres -d $DB    (admin: -d pgbouncer)"
  else
    echo "lab: PgBouncer       stopped"
  fi
}

cmd_psql() {
  exec "$BIN/psql" -X -h "$SOCK" -p "$PORT" -U postgres -d "$DB" "$@"
}

cmd_install() {
  mkdir -p "$LAB"
  echo "lab: building capstone (release) for PostgreSQL $MAJOR"
  (cd "$ROOT" && cargo pgrx package --pg-config "$(pg_config_for "$MAJOR")" \
      --no-default-features --features "pg$MAJOR" >"$LAB/install.log" 2>&1) \
    || { tail -n 40 "$LAB/install.log"; exit 1; }
  # A running server has capstone.so mapped (it is preloaded): overwriting the file in
  # place crashes its processes. Stop it, install, and start it again.
  local was_running=0
  if server_running; then was_running=1; cmd_stop >/dev/null; fi
  echo "lab: installing capstone into PostgreSQL $MAJOR"
  (cd "$ROOT" && cargo pgrx install --release --pg-config "$(pg_config_for "$MAJOR")" \
      --no-default-features --features "pg$MAJOR" >>"$LAB/install.log" 2>&1) \
    || { tail -n 40 "$LAB/install.log"; exit 1; }
  if [ $was_running = 1 ]; then cmd_start >/dev/null; echo "lab: restarted PostgreSQL $MAJOR with the new library"; fi
}

# The second node: a plain server of the same major (postgres_fdw connects to it
# from the lab cluster). It does not load capstone; it only stores shards.
node2_running() { [ -f "$N2DATA/postmaster.pid" ] && as_pg "'$BIN/pg_ctl' -D '$N2DATA' status" >/dev/null 2>&1; }

node2_start() {
  install -d -o postgres -g postgres "$LAB" "$N2DIR"
  if [ ! -f "$N2DATA/PG_VERSION" ]; then
    echo "lab: initdb node2 (PostgreSQL $MAJOR) in $N2DATA"
    as_pg "'$BIN/initdb' -D '$N2DATA' --locale=C.UTF-8 --encoding=UTF8 -A trust -U postgres" >/dev/null
    cat > "$N2DATA/pg_hba.conf" <<HBA
local   all          all                  trust
host    all          all   127.0.0.1/32   trust
HBA
    cat >> "$N2DATA/postgresql.conf" <<CONF

# --- capstone lab node2 settings ---
listen_addresses = '127.0.0.1'
port = $NODE2_PORT
unix_socket_directories = '$N2DIR'
max_connections = 100
shared_preload_libraries = 'pg_stat_statements'
track_io_timing = on
max_wal_size = '4GB'
shared_buffers = '512MB'
work_mem = '16MB'
maintenance_work_mem = '256MB'
logging_collector = off
CONF
    chown postgres:postgres "$N2DATA/pg_hba.conf"
  fi
  if node2_running; then
    echo "lab: node2 already running"
  else
    echo "lab: starting node2 (PostgreSQL $MAJOR) on 127.0.0.1:$NODE2_PORT"
    as_pg "$(pg_server_env_for "$MAJOR") '$BIN/pg_ctl' -D '$N2DATA' -l '$N2DIR/server.log' -w -t 60 -o '-p $NODE2_PORT' start" >/dev/null
  fi
  as_pg "'$BIN/psql' -X -q -h '$N2DIR' -p $NODE2_PORT -d postgres -tAc \"SELECT 1 FROM pg_database WHERE datname = '$DB'\"" | grep -q 1 \
    || as_pg "'$BIN/createdb' -h '$N2DIR' -p $NODE2_PORT '$DB'"
  node2_status
}

node2_stop() {
  if node2_running; then
    as_pg "'$BIN/pg_ctl' -D '$N2DATA' -m fast -w stop" >/dev/null
    echo "lab: node2 stopped"
  else
    echo "lab: node2 not running"
  fi
}

node2_status() {
  if node2_running; then
    echo "lab: node2 (PostgreSQL $MAJOR)  running  data=$N2DATA  log=$N2DIR/server.log"
    echo "     psql -h 127.0.0.1 -p $NODE2_PORT -U postgres -d $DB"
  else
    echo "lab: node2 (PostgreSQL $MAJOR)  stopped  data=$N2DATA"
  fi
}

cmd_node2() {
  case "${1:-status}" in
    start) node2_start ;;
    stop) node2_stop ;;
    status) node2_status ;;
    *) echo "usage: $0 node2 {start|stop|status}" >&2; exit 2 ;;
  esac
}

cmd_destroy() {
  node2_stop || true
  cmd_stop || true
  rm -rf "$LAB"
  echo "lab: removed $LAB"
}

case "${1:-status}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  psql) shift; cmd_psql "$@" ;;
  install) cmd_install ;;
  destroy) cmd_destroy ;;
  node2) shift; cmd_node2 "$@" ;;
  *) echo "usage: $0 {start|stop|status|psql|install|destroy|node2 {start|stop|status}}" >&2; exit 2 ;;
esac
