# Shared by the benchmark scripts: the throwaway PostgreSQL cluster they measure against.
# Source it after defining `die`, and setting `bindir` (server binaries), `dir` (the cluster's
# directory, also its Unix socket directory) and `data` (its data directory).

# Run a server program, as the `postgres` OS user when we are root (the server refuses root).
as_server() {
  if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# initdb (unless $data already holds a cluster) and start the server, Unix socket only, tuned
# for loading and dumping rather than durability (with `durable=1`: fsync, synchronous_commit
# and full_page_writes on, as a production server runs). Sets `started=1`.
bench_cluster_start() {
  if [[ $(id -u) -eq 0 ]]; then
    id postgres >/dev/null 2>&1 || die "running as root needs a 'postgres' OS user to run the server"
    chown postgres: "$dir"
  fi
  chmod 0700 "$dir"
  local durability=off
  [[ ${durable:-0} == 1 ]] && durability=on
  if [[ ! -f $data/PG_VERSION ]]; then
    as_server "$bindir/initdb" -D "$data" -U postgres --auth-local=trust -E UTF8 \
      --locale=C.UTF-8 --no-sync >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
    cat >>"$data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$dir'
port = 5432
fsync = $durability
synchronous_commit = $durability
full_page_writes = $durability
shared_buffers = 256MB
max_wal_size = 4GB
log_min_messages = warning
CONF
  fi
  if as_server "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    die "a server is already running in $data; stop it first"
  fi
  as_server "$bindir/pg_ctl" -D "$data" -l "$dir/server.log" -w -t 120 start >/dev/null \
    || { tail -n 20 "$dir/server.log" >&2; die "the server did not start"; }
  started=1
}
