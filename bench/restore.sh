#!/usr/bin/env bash
# bench/restore.sh: how long a restore takes and how long the database is unavailable, for
# pgkeep restore next to what it replaces.
#
#   bench/restore.sh                                   # realistic 1 M rows, then 200 tables
#   bench/restore.sh --realistic-rows 500000 --many-tables 0 --runs 3
#
# Starts a throwaway PostgreSQL cluster with the local server binaries (as the `postgres` OS
# user when run as root; Unix socket only; in a temporary directory removed on exit), and for
# each dataset builds it in database `bench`, backs it up with pgkeep (plain+gzip and custom
# format), then restores it into `bench` with each method while a probe loop queries the
# database (N: --jobs):
#
#   gunzip|psql        dropdb; createdb; gunzip -c FILE.sql.gz | psql      (the old runbook)
#   pg_restore -jN     dropdb; createdb; pg_restore -jN -d bench FILE.dump
#   pgkeep -j1 (gzip)  pgkeep restore --yes --backup ID -j 1 (swap, plain+gzip backup, one psql)
#   pgkeep -jN (gzip)  pgkeep restore --yes --backup ID -j N (swap, plain+gzip backup, N connections)
#   pgkeep -jN (dump)  pgkeep restore --yes --backup ID -j N (swap, custom-format backup)
#
# Datasets: the realistic table (../shared/datasets/realistic.sql: one big table with two
# indexes, where the split COPY and the parallel index builds decide), many mid-sized tables
# (bench/many_tables.sql: primary keys, indexes and foreign keys on every table), pgbench.
# Wall: the whole command (for the old methods including dropdb and createdb).
# Downtime: the probe runs `psql -d bench -c "SELECT 1 FROM <table> LIMIT 1"` in a loop; the
# downtime is the longest gap between two answers that returned a row (failed, empty and
# blocked queries all count as unavailable; the resolution is one probe round trip, ~10-30 ms,
# plus the probe interval, which is also the floor of the figure).
# "pgkeep says" is the downtime pgkeep itself reports (block connections .. rename committed).
# After each restore the row count of the table is checked against the original.
#
# Targets (from the issues): pgkeep downtime <= 1 s whatever the size; pgkeep -j1 wall no
# slower than gunzip|psql; pgkeep -j2 (gzip) at most 0.85x gunzip|psql and no slower than
# pg_restore -j2; pgkeep -j2 (dump) no slower than pg_restore -j2. (Exit status stays 0 when a target is missed: this measures, it does not
# gate.)
#
# Options (defaults in brackets; 0 skips a dataset):
#   --realistic-rows N    ../shared/datasets/realistic.sql with N rows (table events) [1000000]
#   --many-tables N       bench/many_tables.sql with N tables ...                     [200]
#   --many-rows N         ... of N rows each                                          [20000]
#   --pgbench-scale N     pgbench -i -s N (table pgbench_accounts)                    [0]
#   --jobs N              N of the -jN rows                                           [2]
#   --runs N              runs per method (medians reported)                          [1]
#   --probe-interval S    pause between two probe queries, seconds                    [0.05]
#   --only LIST           only these rows, comma-separated: gunzip, pg_restore, pgkeep-j1,
#                         pgkeep-gzip, pgkeep-dump (targets need their rows)             [all]
#   --durable             the server as production ones run: fsync, synchronous_commit and
#                         full_page_writes on (default: off, to measure CPU rather than the disk)
#   --pgkeep PATH         the pgkeep binary       [target/release/pgkeep; built if missing]
#   --dataset-sql PATH    realistic.sql           [../shared/datasets/realistic.sql]
# Environment: PGKEEP_PG_BINDIR picks the PostgreSQL binaries (default: newest
# /usr/lib/postgresql/*/bin with initdb); PGKEEP_LOG is passed on to pgkeep (e.g.
# PGKEEP_LOG=pgkeep=debug prints the phases of a parallel load on stderr).
#
# Needs: bash, gzip, awk, psql, pg_dump, pg_restore, pgbench, initdb, pg_ctl, dropdb, createdb.

set -euo pipefail

usage() { sed -n '2,/^$/{s/^# \{0,1\}//;p}' "$0"; }
die() { echo "bench/restore.sh: $*" >&2; exit 2; }

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
scale=0
rows=1000000
many=200
many_rows=20000
jobs=2
runs=1
probe_interval=0.05
pgkeep=""
dataset_sql="${PGKEEP_BENCH_DATASET:-}"
only=""
durable=0

while [[ $# -gt 0 ]]; do
  case "$1" in
    --pgbench-scale) scale=${2:?}; shift 2 ;;
    --realistic-rows) rows=${2:?}; shift 2 ;;
    --many-tables) many=${2:?}; shift 2 ;;
    --many-rows) many_rows=${2:?}; shift 2 ;;
    --jobs) jobs=${2:?}; shift 2 ;;
    --probe-interval) probe_interval=${2:?}; shift 2 ;;
    --runs) runs=${2:?}; shift 2 ;;
    --pgkeep) pgkeep=${2:?}; shift 2 ;;
    --dataset-sql) dataset_sql=${2:?}; shift 2 ;;
    --only) only=${2:?}; shift 2 ;;
    --durable) durable=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done
for n in "$scale" "$rows" "$many" "$many_rows" "$jobs" "$runs"; do
  [[ $n =~ ^[0-9]+$ ]] || die "not a whole number: $n"
done
[[ $runs -ge 1 ]] || die "--runs must be at least 1"
[[ $jobs -ge 1 ]] || die "--jobs must be at least 1"
[[ $many -le 999 ]] || die "--many-tables: at most 999"
[[ $scale -gt 0 || $rows -gt 0 || $many -gt 0 ]] || die "choose a dataset size"

bindir="${PGKEEP_PG_BINDIR:-}"
if [[ -z $bindir ]]; then
  bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | while read -r d; do
    [[ -x $d/initdb ]] && echo "$d"; done | tail -n 1)
fi
[[ -n $bindir && -x $bindir/initdb ]] || die "no PostgreSQL server binaries (initdb) found; set PGKEEP_PG_BINDIR"
for t in pg_ctl psql pg_restore pgbench dropdb createdb; do
  [[ -x $bindir/$t ]] || die "$bindir/$t is missing"
done
command -v gzip >/dev/null || die "gzip is needed"

if [[ -z $pgkeep ]]; then
  pgkeep=$repo/target/release/pgkeep
  if [[ ! -x $pgkeep ]]; then
    echo "building pgkeep (release)..." >&2
    (cd "$repo" && cargo build --release --locked >&2)
  fi
fi
[[ -x $pgkeep ]] || die "pgkeep binary not found: $pgkeep"

if [[ $rows -gt 0 && -z $dataset_sql ]]; then
  for c in "$repo/../shared/datasets/realistic.sql" /work/shared/datasets/realistic.sql; do
    [[ -f $c ]] && { dataset_sql=$c; break; }
  done
  [[ -f $dataset_sql ]] || die "realistic.sql not found; pass --dataset-sql PATH"
fi

# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

dir=$(mktemp -d "${TMPDIR:-/tmp}/pgkeep-restore-bench-XXXXXX")
data=$dir/data
started=0
probe_pid=""
cleanup() {
  local rc=$?
  [[ -n $probe_pid ]] && kill "$probe_pid" 2>/dev/null || true
  if [[ $started -eq 1 ]]; then
    as_server "$bindir/pg_ctl" -D "$data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

bench_cluster_start

export PGHOST=$dir PGPORT=5432 PGUSER=postgres
psql_q() { "$bindir/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }


now() { date +%s.%N; }

pk() {
  env -i PATH="$PATH" TMPDIR="$dir" DATABASE_SERVICE_NAME="$dir" PGPORT=5432 \
    POSTGRESQL_USER=postgres POSTGRESQL_DATABASE=bench BACKUP_DIR="$dir/backups" \
    PGKEEP_PG_BINDIR="$bindir" ${PGKEEP_LOG:+PGKEEP_LOG="$PGKEEP_LOG"} "$pgkeep" -q "$@"
}

# The probe: one line per answered query, "<time of the answer> ok|fail", one query every
# $probe_interval s (a probe that starts psql back to back takes a third of a core from what it
# measures, and only from the methods under which the database keeps answering). A query that blocks
# (e.g. behind pg_restore's TRUNCATE of a table it is loading) counts as unavailable until it
# answers, so the downtime is the longest gap between two answers that returned a row.
start_probe() {
  : >"$dir/probe.log"
  (
    while :; do
      if [[ $("$bindir/psql" -X -tAc "select 1 from $table limit 1" -d bench 2>/dev/null) == 1 ]]; then
        echo "$(now) ok"
      else
        echo "$(now) fail"
      fi
      sleep "$probe_interval"
    done >>"$dir/probe.log"
  ) &
  probe_pid=$!
  sleep 0.5
}
stop_probe() {
  sleep 0.5
  kill "$probe_pid" 2>/dev/null || true
  wait "$probe_pid" 2>/dev/null || true
  probe_pid=""
  awk '
    $2 == "ok" { if (last_ok != "") { d = $1 - last_ok; if (d > max) max = d } last_ok = $1; fails = 0 }
    $2 == "fail" { fails = 1 }
    END { if (fails) max = -1; printf "%.3f\n", max }' "$dir/probe.log"
}

methods=("gunzip|psql" "pg_restore -j$jobs" "pgkeep -j1 (gzip)" "pgkeep -j$jobs (gzip)" "pgkeep -j$jobs (dump)")
if [[ -n $only ]]; then
  keys=(gunzip pg_restore pgkeep-j1 pgkeep-gzip pgkeep-dump)
  chosen=()
  for i in "${!keys[@]}"; do
    [[ ,$only, == *",${keys[$i]},"* ]] && chosen+=("${methods[$i]}")
  done
  for k in ${only//,/ }; do
    [[ " ${keys[*]} " == *" $k "* ]] || die "--only: unknown row $k"
  done
  methods=("${chosen[@]}")
fi
run_method() {
  case "$1" in
    "gunzip|psql")
      "$bindir/dropdb" --force bench && "$bindir/createdb" bench &&
        gunzip -c "$gz" | "$bindir/psql" -X -q -d bench >/dev/null 2>"$dir/psql.err" ;;
    "pg_restore -j$jobs")
      "$bindir/dropdb" --force bench && "$bindir/createdb" bench &&
        "$bindir/pg_restore" -j"$jobs" -d bench "$dump" ;;
    "pgkeep -j1 (gzip)") pk restore --yes --backup "$gz_id" -j 1 >"$dir/pgkeep.out" ;;
    "pgkeep -j$jobs (gzip)") pk restore --yes --backup "$gz_id" -j "$jobs" >"$dir/pgkeep.out" ;;
    "pgkeep -j$jobs (dump)") pk restore --yes --backup "$dump_id" -j "$jobs" >"$dir/pgkeep.out" ;;
  esac
}

median() { sort -n | awk '{a[NR]=$1} END { if (NR % 2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2] + a[NR/2+1]) / 2 }'; }
ok() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }' && echo met || echo MISSED; }
count_rows() { psql_q -d bench -tAc "$count_sql"; }

# Build one dataset ($1: realistic | many | pgbench) in a new database `bench`.
build_dataset() {
  psql_q -d postgres -c "drop database if exists bench with (force)" >/dev/null
  psql_q -d postgres -c "create database bench" >/dev/null
  case "$1" in
    pgbench)
      table=pgbench_accounts
      label="pgbench scale $scale"
      "$bindir/pgbench" -q -i -s "$scale" bench >"$dir/pgbench.log" 2>&1 || { tail "$dir/pgbench.log" >&2; die "pgbench -i failed"; }
      count_sql="select count(*) from $table" ;;
    realistic)
      table=events
      label="realistic $rows rows"
      psql_q -d bench -v rows="$rows" -f "$dataset_sql" >/dev/null
      count_sql="select count(*) from $table" ;;
    many)
      table=t001
      label="$many tables x $many_rows rows"
      psql_q -d bench -v tables="$many" -v rows="$many_rows" -f "$repo/bench/many_tables.sql" >/dev/null
      count_sql="select $(psql_q -d bench -tAc "select string_agg(format('(select count(*) from %s)', oid::regclass), ' + ') from pg_class where relkind = 'r' and relnamespace = 'public'::regnamespace")" ;;
  esac
}

# Build, back up and restore one dataset with every method; print its table.
bench_dataset() {
  local t0=$SECONDS
  build_dataset "$1"
  psql_q -d bench -c "vacuum analyze" >/dev/null
  size=$(psql_q -d bench -tAc "select pg_size_pretty(pg_database_size('bench'))")
  expected=$(count_rows)
  echo "dataset: $label ($size, $expected rows), built in $((SECONDS - t0)) s" >&2
  rm -rf "$dir/backups"
  mkdir -p "$dir/backups"
  pk backup >/dev/null
  sleep 1 # backup ids have one-second resolution
  pk backup --format custom >/dev/null
  gz=$(find "$dir/backups" -name '*.sql.gz' | head -n 1)
  dump=$(find "$dir/backups" -name '*.dump' | head -n 1)
  gz_id=$(basename "$gz" .sql.gz)
  dump_id=$(basename "$dump" .dump)
  echo "backups: $(du -h "$gz" | cut -f1) plain+gzip, $(du -h "$dump" | cut -f1) custom" >&2
  local -A walls downs says
  local m r t down got said w d s
  for m in "${methods[@]}"; do
    w=() d=() s=()
    for ((r = 1; r <= runs; r++)); do
      rm -f "$dir/pgkeep.out"
      start_probe
      t=$(now)
      run_method "$m" || die "$m failed"
      t=$(awk -v a="$t" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }')
      down=$(stop_probe)
      got=$(count_rows)
      [[ $got == "$expected" ]] || die "$m: $got rows after the restore, expected $expected"
      said="-"
      if [[ -f $dir/pgkeep.out ]]; then
        said=$(sed -n 's/.*downtime (database unavailable): \([0-9.]*\)s.*/\1/p' "$dir/pgkeep.out")
        grep -E '^  [a-z -]+ +[0-9.]+s$' "$dir/pgkeep.out" | sed 's/^/      /' >&2
        pk cleanup --yes >/dev/null
      fi
      echo "  $m run $r: wall ${t}s, downtime ${down}s (pgkeep says ${said})" >&2
      w+=("$t") d+=("$down") s+=("$said")
    done
    walls[$m]=$(printf '%s\n' "${w[@]}" | median)
    downs[$m]=$(printf '%s\n' "${d[@]}" | median)
    says[$m]=$([[ ${s[0]} == - ]] && echo - || printf '%s\n' "${s[@]}" | median)
  done

  local gzm="gunzip|psql" prm="pg_restore -j$jobs" k1="pgkeep -j1 (gzip)" kg="pgkeep -j$jobs (gzip)" kd="pgkeep -j$jobs (dump)"
  # a / b, or - when a row was left out (--only).
  ratio() { [[ -n ${1:-} && -n ${2:-} ]] && awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }' || echo -; }
  # met / MISSED, or - when a row was left out.
  target() { [[ -n ${1:-} && -n ${2:-} ]] && ok "$1" "$2" || echo -; }
  echo
  echo "Restore of $label ($size; backups: $(du -h "$gz" | cut -f1) .sql.gz, $(du -h "$dump" | cut -f1) .dump), median of $runs run(s), $(nproc) cores$([[ $durable == 1 ]] && echo ", durable server (fsync, synchronous_commit on)")"
  printf '%-20s %10s %14s %14s %16s %16s\n' "method" "wall s" "downtime s" "pgkeep says s" "vs gunzip|psql" "vs $prm"
  for m in "${methods[@]}"; do
    printf '%-20s %10s %14s %14s %16s %16s\n' "$m" "${walls[$m]}" "${downs[$m]}" "${says[$m]}" \
      "$(ratio "${walls[$m]}" "${walls[$gzm]:-}")" "$(ratio "${walls[$m]}" "${walls[$prm]:-}")"
  done
  echo
  echo "target pgkeep downtime <= 1 s: gzip -j1 $(target "${downs[$k1]:-}" 1), gzip -j$jobs $(target "${downs[$kg]:-}" 1), dump -j$jobs $(target "${downs[$kd]:-}" 1)"
  echo "target $k1 wall <= gunzip|psql: $(target "${walls[$k1]:-}" "${walls[$gzm]:-}")"
  local gz85=""
  [[ -n ${walls[$gzm]:-} ]] && gz85=$(awk -v a="${walls[$gzm]}" 'BEGIN { printf "%.3f", a * 0.85 }')
  echo "target $kg wall <= 0.85x gunzip|psql: $(target "${walls[$kg]:-}" "$gz85")"
  echo "target $kg wall <= $prm: $(target "${walls[$kg]:-}" "${walls[$prm]:-}")"
  echo "target $kd wall <= $prm: $(target "${walls[$kd]:-}" "${walls[$prm]:-}")"
  echo
}

[[ $rows -gt 0 ]] && bench_dataset realistic
[[ $many -gt 0 ]] && bench_dataset many
[[ $scale -gt 0 ]] && bench_dataset pgbench
exit 0
