#!/usr/bin/env bash
# bench/restore.sh: how long a restore takes and how long the database is unavailable, for
# pgkeep restore next to what it replaces.
#
#   bench/restore.sh --pgbench-scale 20
#   bench/restore.sh --realistic-rows 500000
#
# Starts a throwaway PostgreSQL cluster with the local server binaries (as the `postgres` OS
# user when run as root; Unix socket only; in a temporary directory removed on exit), builds one
# dataset in database `bench`, backs it up with pgkeep (plain+gzip and custom format), then
# restores it into `bench` with each method while a probe loop queries the database:
#
#   gunzip|psql        dropdb; createdb; gunzip -c FILE.sql.gz | psql      (the old runbook)
#   pg_restore -j2     dropdb; createdb; pg_restore -j2 -d bench FILE.dump
#   pgkeep -j1 (gzip)  pgkeep restore --yes --backup ID -j 1 (swap, plain+gzip backup, one psql)
#   pgkeep -j2 (gzip)  pgkeep restore --yes --backup ID -j 2 (swap, plain+gzip backup, 2 connections)
#   pgkeep -j2 (dump)  pgkeep restore --yes --backup ID -j 2 (swap, custom-format backup)
#
# Wall: the whole command (for the old methods including dropdb and createdb).
# Downtime: the probe runs `psql -d bench -c "SELECT 1 FROM <table> LIMIT 1"` in a loop; the
# downtime is the longest gap between two answers that returned a row (failed, empty and
# blocked queries all count as unavailable; the resolution is one probe round trip, ~10-30 ms,
# which is also the floor of the figure).
# "pgkeep says" is the downtime pgkeep itself reports (block connections .. rename committed).
# After each restore the row count of the table is checked against the original.
#
# Targets (from the issues): pgkeep downtime <= 1 s whatever the size; pgkeep -j1 wall no
# slower than gunzip|psql; pgkeep -j2 (gzip) at most 0.85x gunzip|psql and no slower than
# pg_restore -j2; pgkeep -j2 (dump) no slower than pg_restore -j2. (Exit status stays 0 when a target is missed: this measures, it does not
# gate.)
#
# Options (defaults in brackets):
#   --pgbench-scale N     pgbench -i -s N dataset (table pgbench_accounts)         [20]
#   --realistic-rows N    use ../shared/datasets/realistic.sql with N rows instead (table events)
#   --runs N              runs per method (medians reported)                        [1]
#   --pgkeep PATH         the pgkeep binary       [target/release/pgkeep; built if missing]
#   --dataset-sql PATH    realistic.sql           [../shared/datasets/realistic.sql]
# Environment: PGKEEP_PG_BINDIR picks the PostgreSQL binaries (default: newest
# /usr/lib/postgresql/*/bin with initdb).
#
# Needs: bash, gzip, awk, psql, pg_dump, pg_restore, pgbench, initdb, pg_ctl, dropdb, createdb.

set -euo pipefail

usage() { sed -n '2,/^$/{s/^# \{0,1\}//;p}' "$0"; }
die() { echo "bench/restore.sh: $*" >&2; exit 2; }

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
scale=20
rows=0
runs=1
pgkeep=""
dataset_sql="${PGKEEP_BENCH_DATASET:-}"

while [[ $# -gt 0 ]]; do
  case "$1" in
    --pgbench-scale) scale=${2:?}; rows=0; shift 2 ;;
    --realistic-rows) rows=${2:?}; scale=0; shift 2 ;;
    --runs) runs=${2:?}; shift 2 ;;
    --pgkeep) pgkeep=${2:?}; shift 2 ;;
    --dataset-sql) dataset_sql=${2:?}; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done
for n in "$scale" "$rows" "$runs"; do
  [[ $n =~ ^[0-9]+$ ]] || die "not a whole number: $n"
done
[[ $runs -ge 1 ]] || die "--runs must be at least 1"
[[ $scale -gt 0 || $rows -gt 0 ]] || die "choose a dataset size"

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

mkdir -p "$dir/backups"
psql_q -d postgres -c "create database bench"
t0=$SECONDS
if [[ $scale -gt 0 ]]; then
  table=pgbench_accounts
  label="pgbench scale $scale"
  "$bindir/pgbench" -q -i -s "$scale" bench >"$dir/pgbench.log" 2>&1 || { tail "$dir/pgbench.log" >&2; die "pgbench -i failed"; }
else
  table=events
  label="realistic $rows rows"
  psql_q -d bench -v rows="$rows" -f "$dataset_sql" >/dev/null
fi
psql_q -d bench -c "vacuum analyze" >/dev/null
size=$(psql_q -d bench -tAc "select pg_size_pretty(pg_database_size('bench'))")
expected=$(psql_q -d bench -tAc "select count(*) from $table")
echo "dataset: $label ($size, $expected rows in $table), built in $((SECONDS - t0)) s" >&2

pk() {
  env -i PATH="$PATH" TMPDIR="$dir" DATABASE_SERVICE_NAME="$dir" PGPORT=5432 \
    POSTGRESQL_USER=postgres POSTGRESQL_DATABASE=bench BACKUP_DIR="$dir/backups" \
    PGKEEP_PG_BINDIR="$bindir" "$pgkeep" -q "$@"
}
pk backup >/dev/null
sleep 1 # backup ids have one-second resolution
pk backup --format custom >/dev/null
gz=$(find "$dir/backups" -name '*.sql.gz' | head -n 1)
dump=$(find "$dir/backups" -name '*.dump' | head -n 1)
gz_id=$(basename "$gz" .sql.gz)
dump_id=$(basename "$dump" .dump)
echo "backups: $(du -h "$gz" | cut -f1) plain+gzip, $(du -h "$dump" | cut -f1) custom" >&2

now() { date +%s.%N; }

# The probe: one line per answered query, "<time of the answer> ok|fail". A query that blocks
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

declare -A walls downs says
methods=("gunzip|psql" "pg_restore -j2" "pgkeep -j1 (gzip)" "pgkeep -j2 (gzip)" "pgkeep -j2 (dump)")
run_method() {
  case "$1" in
    "gunzip|psql")
      "$bindir/dropdb" --force bench && "$bindir/createdb" bench &&
        gunzip -c "$gz" | "$bindir/psql" -X -q -d bench >/dev/null 2>"$dir/psql.err" ;;
    "pg_restore -j2")
      "$bindir/dropdb" --force bench && "$bindir/createdb" bench &&
        "$bindir/pg_restore" -j2 -d bench "$dump" ;;
    "pgkeep -j1 (gzip)") pk restore --yes --backup "$gz_id" -j 1 >"$dir/pgkeep.out" ;;
    "pgkeep -j2 (gzip)") pk restore --yes --backup "$gz_id" -j 2 >"$dir/pgkeep.out" ;;
    "pgkeep -j2 (dump)") pk restore --yes --backup "$dump_id" -j 2 >"$dir/pgkeep.out" ;;
  esac
}

median() { sort -n | awk '{a[NR]=$1} END { if (NR % 2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2] + a[NR/2+1]) / 2 }'; }

for m in "${methods[@]}"; do
  w=() d=() s=()
  for ((r = 1; r <= runs; r++)); do
    rm -f "$dir/pgkeep.out"
    start_probe
    t=$(now)
    run_method "$m" || die "$m failed"
    t=$(awk -v a="$t" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }')
    down=$(stop_probe)
    got=$(psql_q -d bench -tAc "select count(*) from $table")
    [[ $got == "$expected" ]] || die "$m: $got rows in $table after the restore, expected $expected"
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

echo
echo "Restore of $label ($size; backups: $(du -h "$gz" | cut -f1) .sql.gz, $(du -h "$dump" | cut -f1) .dump), median of $runs run(s), $(nproc) cores"
printf '%-20s %10s %14s %14s %12s\n' "method" "wall s" "downtime s" "pgkeep says s" "wall vs gz|psql"
for m in "${methods[@]}"; do
  ratio=$(awk -v a="${walls[$m]}" -v b="${walls["gunzip|psql"]}" 'BEGIN { printf "%.2fx", a / b }')
  printf '%-20s %10s %14s %14s %12s\n' "$m" "${walls[$m]}" "${downs[$m]}" "${says[$m]}" "$ratio"
done
echo
ok() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }' && echo met || echo MISSED; }
echo "target pgkeep downtime <= 1 s: gzip -j1 $(ok "${downs["pgkeep -j1 (gzip)"]}" 1), gzip -j2 $(ok "${downs["pgkeep -j2 (gzip)"]}" 1), dump -j2 $(ok "${downs["pgkeep -j2 (dump)"]}" 1)"
echo "target pgkeep -j1 (gzip) wall <= gunzip|psql: $(ok "${walls["pgkeep -j1 (gzip)"]}" "${walls["gunzip|psql"]}")"
gz85=$(awk -v a="${walls["gunzip|psql"]}" 'BEGIN { printf "%.3f", a * 0.85 }')
echo "target pgkeep -j2 (gzip) wall <= 0.85x gunzip|psql: $(ok "${walls["pgkeep -j2 (gzip)"]}" "$gz85")"
echo "target pgkeep -j2 (gzip) wall <= pg_restore -j2: $(ok "${walls["pgkeep -j2 (gzip)"]}" "${walls["pg_restore -j2"]}")"
echo "target pgkeep -j2 (dump) wall <= pg_restore -j2: $(ok "${walls["pgkeep -j2 (dump)"]}" "${walls["pg_restore -j2"]}")"
