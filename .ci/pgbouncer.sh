#!/usr/bin/env bash
# PgBouncer in *transaction* pooling mode in front of the test PostgreSQL, as most hosts run it.
#
#   .ci/pgbouncer.sh start   # installs Debian's pgbouncer if missing, starts it, prints the URL
#   .ci/pgbouncer.sh stop
#
# Then: export MENTORPAY_TEST_PGBOUNCER_URL=postgresql+psycopg://postgres@127.0.0.1:6432/test
# and run pytest; the concurrency, storm and payout tests also run through the pooler.
#
# Settings (environment): PGBOUNCER_PORT (6432), PGBOUNCER_DIR (/tmp/mentorpay-pgbouncer-PORT),
# POSTGRES_HOST (127.0.0.1), POSTGRES_PORT (5432). Authentication is "trust": a test rig only.
set -euo pipefail

port="${PGBOUNCER_PORT:-6432}"
dir="${PGBOUNCER_DIR:-/tmp/mentorpay-pgbouncer-$port}"
pg_host="${POSTGRES_HOST:-127.0.0.1}"
pg_port="${POSTGRES_PORT:-5432}"

stop() {
  if [ -f "$dir/pgbouncer.pid" ]; then
    pid="$(cat "$dir/pgbouncer.pid")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    rm -f "$dir/pgbouncer.pid"
  fi
}

start() {
  if ! command -v pgbouncer >/dev/null 2>&1 && [ ! -x /usr/sbin/pgbouncer ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >/dev/null
  fi
  bin="$(command -v pgbouncer || echo /usr/sbin/pgbouncer)"
  stop
  mkdir -p "$dir"
  # "*": any database name is passed through, so each test run can use a database of its own
  # (PgBouncer refuses the "options" startup parameter a per-run search_path would need).
  cat >"$dir/pgbouncer.ini" <<EOF
[databases]
* = host=$pg_host port=$pg_port

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $dir/userlist.txt
pool_mode = transaction
max_client_conn = 500
default_pool_size = 20
server_reset_query =
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
admin_users = postgres
EOF
  printf '"postgres" ""\n' >"$dir/userlist.txt"
  : >"$dir/pgbouncer.log"
  # PgBouncer refuses to run as root; it drops to the postgres user, which must own its files.
  user_flag=()
  if [ "$(id -u)" = 0 ]; then
    chown -R postgres "$dir"
    user_flag=(-u postgres)
  fi
  "$bin" -d "${user_flag[@]}" "$dir/pgbouncer.ini"
  for _ in $(seq 1 50); do
    pg_isready -h 127.0.0.1 -p "$port" -q 2>/dev/null && break
    sleep 0.1
  done
  if ! pg_isready -h 127.0.0.1 -p "$port" -q 2>/dev/null; then
    echo "FATAL: PgBouncer did not start on 127.0.0.1:$port" >&2
    cat "$dir/pgbouncer.log" >&2 || true
    exit 1
  fi
  echo "PgBouncer (transaction pooling) on 127.0.0.1:$port; log: $dir/pgbouncer.log"
  echo "export MENTORPAY_TEST_PGBOUNCER_URL=postgresql+psycopg://postgres@127.0.0.1:$port/test"
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  *)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
