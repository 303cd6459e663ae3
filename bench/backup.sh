#!/usr/bin/env bash
# bench/backup.sh: how fast, how heavy and how small a pgkeep backup is, next to what it replaces.
#
#   bench/backup.sh --pgbench-scale 50 --realistic-rows 2000000 --runs 3
#
# Starts a throwaway PostgreSQL cluster with the local server binaries (as the `postgres` OS
# user when run as root; Unix socket only; in a temporary directory removed on exit), builds two
# datasets and, for each, measures over several runs the wall time, CPU (user+sys of the whole
# command tree: pg_dump, gzip, pgkeep), the server's CPU for it (what the postmaster reaps from
# the backends it ran), peak RSS (of the largest single process in the tree: pgkeep's own as
# long as it exceeds pg_dump's, shown on the limit's row) and output size of:
#
#   limit          pg_dump > /dev/null            what no plain dump can beat
#   pg_dump|gzip   pg_dump | gzip > FILE          what the old backup pod does (gzip -6)
#   pg_dump|zstd   pg_dump | zstd -1 > FILE       the plain pipe pgkeep zstd stands beside (needs zstd)
#   pgkeep gzip    pgkeep backup                  default: parallel gzip members (libdeflate)
#   pgkeep zstd    pgkeep backup --compression zstd
#   pgkeep custom  pgkeep backup --format custom (opt-in with --only ...,pgkeep-custom)
#   pgkeep gzip s3 pgkeep backup into s3://bench/... on moto_server (loopback; opt-in with --only
#                  ...,pgkeep-s3): measures moto, a Python test server, as much as pgkeep;
#                  not a figure for a real object store
#   ... age        any pgkeep method with the suffix -age (pgkeep-gzip-age, pgkeep-zstd-age,
#                  pgkeep-custom-age, pgkeep-s3-age): the same backup encrypted with age to a
#                  key made for the run (needs age-keygen); the table adds its wall time over
#                  the same backup unencrypted (target: at most 1.10x)
#
# then prints the medians with ratios: wall vs the limit, wall and size vs pg_dump|gzip, and,
# for the realistic dataset, whether the targets are met:
#   pgkeep zstd wall <= 1.25x limit, size <= pg_dump|gzip;
#   pgkeep gzip wall <= 0.5x pg_dump|gzip, size <= 1.05x pg_dump|gzip;  pgkeep peak RSS <= 64 MiB.
# (Exit status stays 0 when a target is missed: this measures, it does not gate.)
#
# Datasets:
#   pgbench     `pgbench -i -s N` (mostly pgbench_accounts: narrow rows, compresses ~35x)
#   realistic   ../shared/datasets/realistic.sql with `psql -v rows=N` (text, jsonb, numbers,
#               timestamps; compresses ~3.5x with gzip -6)
#
# Options (defaults in brackets):
#   --pgbench-scale N      pgbench scale factor, 0 to skip the dataset          [50]
#   --realistic-rows N     rows of the realistic table, 0 to skip the dataset   [2000000]
#   --runs N               measured runs per command (medians are reported)     [3]
#   --pgkeep PATH          the pgkeep binary               [target/release/pgkeep; built if missing]
#   --dataset-sql PATH     realistic.sql      [$PGKEEP_BENCH_DATASET, ../shared/datasets/realistic.sql]
#   --only LIST            comma-separated subset of: limit,gzip,zstd,pgkeep-gzip,pgkeep-zstd,
#                          pgkeep-custom,pgkeep-s3, and each pgkeep-* method with -age
#   --workdir DIR          keep the cluster and its datasets in DIR and reuse them on the next run
#                          (the server is stopped on exit, the directory kept)
#   --raw                  also print every single measurement
# Environment: PGKEEP_PG_BINDIR picks the PostgreSQL binaries (default: newest
# /usr/lib/postgresql/*/bin with initdb); extra PGKEEP_* settings (e.g. PGKEEP_THREADS) pass
# through to pgkeep.
#
# Needs: bash, GNU time (/usr/bin/time), gzip, pgbench, psql, pg_dump, initdb, pg_ctl.
# Disk: the realistic dataset at 2 M rows takes about 1.1 GB, its outputs about 130 MB each
# (one at a time).

set -euo pipefail

usage() { sed -n '2,/^$/{s/^# \{0,1\}//;p}' "$0"; }
die() { echo "bench/backup.sh: $*" >&2; exit 2; }

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
scale=50
rows=2000000
runs=3
pgkeep=""
dataset_sql="${PGKEEP_BENCH_DATASET:-}"
only="limit,gzip,zstd,pgkeep-gzip,pgkeep-zstd"
workdir=""
raw=0

while [[ $# -gt 0 ]]; do
  case "$1" in
    --pgbench-scale) scale=${2:?}; shift 2 ;;
    --realistic-rows) rows=${2:?}; shift 2 ;;
    --runs) runs=${2:?}; shift 2 ;;
    --pgkeep) pgkeep=${2:?}; shift 2 ;;
    --dataset-sql) dataset_sql=${2:?}; shift 2 ;;
    --only) only=${2:?}; shift 2 ;;
    --workdir) workdir=${2:?}; shift 2 ;;
    --raw) raw=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done
for n in "$scale" "$rows" "$runs"; do
  [[ $n =~ ^[0-9]+$ ]] || die "not a whole number: $n"
done
[[ $runs -ge 1 ]] || die "--runs must be at least 1"
IFS=, read -r -a methods <<<"$only"
for m in "${methods[@]}"; do
  case "${m%-age}" in
    limit|gzip|zstd) [[ $m != *-age ]] || die "unknown method in --only: $m" ;;
    pgkeep-gzip|pgkeep-zstd|pgkeep-custom|pgkeep-s3) ;;
    *) die "unknown method in --only: $m" ;;
  esac
done

[[ -x /usr/bin/time ]] || die "GNU time (/usr/bin/time) is needed: apt-get install time"
command -v gzip >/dev/null || die "gzip is needed"
if [[ ",$only," == *,zstd,* ]]; then command -v zstd >/dev/null || die "the zstd row needs zstd: apt-get install zstd"; fi

# --- PostgreSQL binaries --------------------------------------------------------------------
bindir="${PGKEEP_PG_BINDIR:-}"
if [[ -z $bindir ]]; then
  bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | while read -r d; do
    [[ -x $d/initdb ]] && echo "$d"; done | tail -n 1)
fi
[[ -n $bindir && -x $bindir/initdb ]] || die "no PostgreSQL server binaries (initdb) found; set PGKEEP_PG_BINDIR"
for t in pg_ctl psql pg_dump pgbench; do
  [[ -x $bindir/$t ]] || die "$bindir/$t is missing"
done

# --- pgkeep ---------------------------------------------------------------------------------
if [[ -z $pgkeep ]]; then
  pgkeep=$repo/target/release/pgkeep
  if [[ ! -x $pgkeep ]]; then
    echo "building pgkeep (release)..." >&2
    (cd "$repo" && cargo build --release --locked >&2)
  fi
fi
[[ -x $pgkeep ]] || die "pgkeep binary not found: $pgkeep"

# --- realistic.sql --------------------------------------------------------------------------
if [[ $rows -gt 0 && -z $dataset_sql ]]; then
  dataset_sql=$repo/../shared/datasets/realistic.sql
fi
[[ $rows -eq 0 || -f $dataset_sql ]] || die "realistic.sql not found; pass --dataset-sql PATH"

# --- the throwaway cluster ------------------------------------------------------------------
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

keep_dir=0
if [[ -n $workdir ]]; then
  mkdir -p "$workdir"
  dir=$(cd "$workdir" && pwd)
  keep_dir=1
else
  dir=$(mktemp -d "${TMPDIR:-/tmp}/pgkeep-bench-XXXXXX")
fi
data=$dir/data
out=$dir/out
started=0

moto_pid=""
cleanup() {
  local rc=$?
  if [[ -n $moto_pid ]]; then kill "$moto_pid" 2>/dev/null || true; fi
  if [[ $started -eq 1 ]]; then
    as_server "$bindir/pg_ctl" -D "$data" -m fast -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$out"
  if [[ $keep_dir -eq 0 ]]; then rm -rf "$dir"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

bench_cluster_start
postmaster=$(head -n 1 "$data/postmaster.pid")
ticks=$(getconf CLK_TCK)

export PGHOST=$dir PGPORT=5432 PGUSER=postgres
psql_q() { "$bindir/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }
db_exists() { [[ $(psql_q -d postgres -tAc "select 1 from pg_database where datname = '$1'") == 1 ]]; }

# A dataset is built once per (kind, size); a reused --workdir keeps it.
ensure_db() {
  local db=$1 kind=$2 n=$3
  if db_exists "$db"; then return; fi
  echo "building dataset $db..." >&2
  psql_q -d postgres -c "create database $db"
  local t0=$SECONDS
  case "$kind" in
    pgbench) "$bindir/pgbench" -q -i -s "$n" "$db" >"$dir/pgbench-$db.log" 2>&1 \
               || { tail "$dir/pgbench-$db.log" >&2; die "pgbench -i failed"; } ;;
    realistic) psql_q -d "$db" -v rows="$n" -f "$dataset_sql" >/dev/null ;;
  esac
  psql_q -d "$db" -c "vacuum analyze" >/dev/null
  echo "  built in $((SECONDS - t0)) s" >&2
}

datasets=()
if [[ $scale -gt 0 ]]; then
  ensure_db "bench_pgbench_s$scale" pgbench "$scale"
  datasets+=("pgbench:bench_pgbench_s$scale:pgbench scale $scale")
fi
if [[ $rows -gt 0 ]]; then
  ensure_db "bench_realistic_r$rows" realistic "$rows"
  datasets+=("realistic:bench_realistic_r$rows:realistic $rows rows")
fi
[[ ${#datasets[@]} -gt 0 ]] || die "nothing to measure: both datasets are skipped"

# --- the age key (-age methods only) -------------------------------------------------------
age_public=""
if [[ ",$only," == *-age,* ]]; then
  command -v age-keygen >/dev/null || die "the -age methods need age-keygen (apt-get install age)"
  age-keygen -o "$dir/age-key.txt" 2>/dev/null
  age_public=$(age-keygen -y "$dir/age-key.txt")
fi

# --- the S3 server (pgkeep-s3 only) ---------------------------------------------------------
moto=""
if [[ ",$only," == *,pgkeep-s3,* || ",$only," == *,pgkeep-s3-age,* ]]; then
  command -v moto_server >/dev/null || die "pgkeep-s3 needs moto_server: pip install 'moto[server]'"
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  moto_server -H 127.0.0.1 -p "$port" >"$dir/moto.log" 2>&1 &
  moto_pid=$!
  moto=http://127.0.0.1:$port
  for _ in $(seq 1 600); do curl -so /dev/null "$moto/moto-api/data.json" && break; sleep 0.05; done
  curl -sf -X PUT "$moto/bench" >/dev/null || die "moto_server did not start (see $dir/moto.log)"
fi

# --- measuring ------------------------------------------------------------------------------
mkdir -p "$out"
results=$dir/results.tsv   # dataset method run wall user sys maxrss_kb bytes server_cpu
: >"$results"
timef=$dir/time.out

# CPU seconds of the server processes the postmaster has reaped (backends, once they exit).
server_cpu() {
  awk -v t="$ticks" '{ sub(/^.*\) /, ""); print ($14 + $15) / t }' "/proc/$postmaster/stat"
}

# run_one DATASET DB METHOD RUN: time one command, append a line to $results.
run_one() {
  local ds=$1 db=$2 m=$3 run=$4 size=0 f s0 s1
  rm -rf "$out" && mkdir -p "$out/backups"
  sleep 0.3
  s0=$(server_cpu)
  case "$m" in
    limit)
      /usr/bin/time -f '%e %U %S %M' -o "$timef" \
        "$bindir/pg_dump" --format=plain "$db" >/dev/null ;;
    gzip)
      /usr/bin/time -f '%e %U %S %M' -o "$timef" \
        bash -c 'set -o pipefail; "$1" --format=plain "$2" | gzip > "$3"' _ \
        "$bindir/pg_dump" "$db" "$out/dump.sql.gz"
      size=$(stat -c %s "$out/dump.sql.gz") ;;
    zstd)
      /usr/bin/time -f '%e %U %S %M' -o "$timef" \
        bash -c 'set -o pipefail; "$1" --format=plain "$2" | zstd -1 -q > "$3"' _ \
        "$bindir/pg_dump" "$db" "$out/dump.sql.zst"
      size=$(stat -c %s "$out/dump.sql.zst") ;;
    pgkeep-*)
      local base=${m%-age} enc=() flags=()
      [[ $m == *-age ]] && enc=(PGKEEP_AGE_RECIPIENTS="$age_public")
      case "$base" in
        pgkeep-gzip|pgkeep-zstd) flags=(--compression "${base#pgkeep-}") ;;
        pgkeep-custom) flags=(--format custom) ;;
      esac
      local where=(BACKUP_DIR="$out/backups")
      [[ $base == pgkeep-s3 ]] && where=(BACKUP_DIR="s3://bench/$ds-$m-$run" PGKEEP_S3_ENDPOINT="$moto"
        PGKEEP_S3_ALLOW_HTTP=true AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret
        PGKEEP_LOCK_DIR="$out/locks")
      env -u PGHOST -u PGPORT -u PGUSER \
        DATABASE_SERVICE_NAME="$dir" POSTGRESQL_USER=postgres POSTGRESQL_DATABASE="$db" \
        PGKEEP_PG_BINDIR="$bindir" "${where[@]}" "${enc[@]}" \
        /usr/bin/time -f '%e %U %S %M' -o "$timef" \
        "$pgkeep" --quiet backup "${flags[@]}" 2>"$out/pgkeep.log" \
        || { cat "$out/pgkeep.log" >&2; die "pgkeep backup ($m) failed"; }
      size=$(env "${where[@]}" DATABASE_SERVICE_NAME="$dir" "$pgkeep" list --json \
        | python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["stored_bytes"])') ;;
  esac
  read -r wall user sys rss <"$timef"
  sleep 0.3 # let the postmaster reap the backend
  s1=$(server_cpu)
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.2f\n' "$ds" "$m" "$run" "$wall" "$user" "$sys" "$rss" "$size" \
    "$(awk -v a="$s0" -v b="$s1" 'BEGIN { print b - a }')" >>"$results"
}

echo "load before: $(uptime)" >&2
load_before=$(uptime | sed 's/.*load average: //')
for entry in "${datasets[@]}"; do
  IFS=: read -r ds db label <<<"$entry"
  # The raw dump size, and a warm-up so every command reads a warm cache.
  raw_bytes=$("$bindir/pg_dump" --format=plain "$db" | wc -c)
  echo "$ds: $label, plain dump $raw_bytes bytes" >&2
  echo -e "$ds\traw\t0\t0\t0\t0\t0\t$raw_bytes\t0" >>"$results"
  # Interleave the commands run by run so that background load falls on all of them alike.
  for ((r = 1; r <= runs; r++)); do
    for m in "${methods[@]}"; do
      run_one "$ds" "$db" "$m" "$r"
      echo "  run $r $m: $(tail -n 1 "$results" | cut -f4-9)" >&2
    done
  done
done
load_after=$(uptime | sed 's/.*load average: //')

# --- the table ------------------------------------------------------------------------------
echo
echo "pgkeep backup benchmark: $(nproc) cores, PostgreSQL $("$bindir/pg_dump" --version | awk "{print \$3}"), $runs runs, medians"
echo "load average before: $load_before; after: $load_after"
for entry in "${datasets[@]}"; do
  IFS=: read -r ds db label <<<"$entry"
  awk -F'\t' -v ds="$ds" -v label="$label" -v order="$only" -v raw="$raw" '
    function median(list,   a, n, i, j, t) {
      n = split(list, a, " ")
      for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
      return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    function ratio(a, b) { return (b > 0 && a != "") ? sprintf("%.2fx", a / b) : "-" }
    $1 != ds { next }
    $2 == "raw" { rawb = $8; next }
    {
      wall[$2] = wall[$2] " " $4; cpu[$2] = cpu[$2] " " ($5 + $6); srv[$2] = srv[$2] " " $9
      rss[$2] = rss[$2] " " $7; size[$2] = size[$2] " " $8
      if (raw) rows_raw = rows_raw sprintf("  %-14s run %s: wall %s s, cpu %.2f s, server cpu %s s, rss %d KiB, %d bytes\n", $2, $3, $4, $5 + $6, $9, $7, $8)
    }
    END {
      name["limit"] = "pg_dump >/dev/null"; name["gzip"] = "pg_dump | gzip"; name["zstd"] = "pg_dump | zstd -1"
      name["pgkeep-gzip"] = "pgkeep gzip"; name["pgkeep-zstd"] = "pgkeep zstd"
      name["pgkeep-s3"] = "pgkeep gzip s3 (moto)"; name["pgkeep-custom"] = "pgkeep custom"
      split("pgkeep-gzip pgkeep-zstd pgkeep-custom pgkeep-s3", pk, " ")
      for (k in pk) name[pk[k] "-age"] = name[pk[k]] " age"
      printf "\n== %s (plain dump %.1f MB) ==\n", label, rawb / 1e6
      printf "%-24s %7s %7s %7s %8s %9s %10s %9s %9s %9s\n", "command", "wall s", "cpu s", "srv cpu", "rss MiB", "size MB", "wall/limit", "wall/gzip", "size/gzip", "age/plain"
      n = split(order, ms, ",")
      for (i = 1; i <= n; i++) { m = ms[i]; if (m in wall) { W[m] = median(wall[m]); C[m] = median(cpu[m]); V[m] = median(srv[m]); R[m] = median(rss[m]) / 1024; S[m] = median(size[m]) } }
      for (i = 1; i <= n; i++) {
        m = ms[i]; if (!(m in W)) continue
        plain = m; sub(/-age$/, "", plain)
        printf "%-24s %7.2f %7.2f %7.2f %8.1f %9s %10s %9s %9s %9s\n", name[m], W[m], C[m], V[m], R[m],
          (m == "limit" ? "-" : sprintf("%.1f", S[m] / 1e6)),
          ("limit" in W ? ratio(W[m], W["limit"]) : "-"),
          ("gzip" in W ? ratio(W[m], W["gzip"]) : "-"),
          (m != "limit" && "gzip" in S ? ratio(S[m], S["gzip"]) : "-"),
          (m ~ /-age$/ && (plain in W) ? ratio(W[m], W[plain]) : "-")
      }
      if (raw) printf "%s", rows_raw
      for (i = 1; i <= n; i++) { m = ms[i]; plain = m; sub(/-age$/, "", plain)
        if (m ~ /-age$/ && (m in W) && (plain in W))
          printf "  %s wall <= 1.10x %s: %.2fx %s\n", name[m], name[plain], W[m] / W[plain], (W[m] <= 1.10 * W[plain] ? "MET" : "MISSED") }
      if (ds != "realistic") exit
      print "targets (realistic):"
      if (("pgkeep-zstd" in W) && ("limit" in W))
        printf "  pgkeep zstd wall <= 1.10x limit (issue 17): %.2fx %s\n", W["pgkeep-zstd"] / W["limit"],
          (W["pgkeep-zstd"] <= 1.10 * W["limit"] ? "MET" : "MISSED")
      if (("pgkeep-zstd" in W) && ("zstd" in W))
        printf "  pgkeep zstd wall / pg_dump|zstd: %.2fx\n", W["pgkeep-zstd"] / W["zstd"]
      if (("pgkeep-zstd" in W) && ("limit" in W) && ("gzip" in W))
        printf "  pgkeep zstd wall <= 1.25x limit: %.2fx %s; size <= pg_dump|gzip: %.2fx %s\n",
          W["pgkeep-zstd"] / W["limit"], (W["pgkeep-zstd"] <= 1.25 * W["limit"] ? "MET" : "MISSED"),
          S["pgkeep-zstd"] / S["gzip"], (S["pgkeep-zstd"] <= S["gzip"] ? "MET" : "MISSED")
      if (("pgkeep-gzip" in W) && ("gzip" in W))
        printf "  pgkeep gzip wall <= 0.50x pg_dump|gzip: %.2fx %s; size <= 1.05x: %.2fx %s\n",
          W["pgkeep-gzip"] / W["gzip"], (W["pgkeep-gzip"] <= 0.5 * W["gzip"] ? "MET" : "MISSED"),
          S["pgkeep-gzip"] / S["gzip"], (S["pgkeep-gzip"] <= 1.05 * S["gzip"] ? "MET" : "MISSED")
      for (i = 1; i <= n; i++) { m = ms[i]; if (m ~ /^pgkeep/ && (m in R))
        printf "  %s peak RSS <= 64 MiB: %.1f MiB %s\n", name[m], R[m], (R[m] <= 64 ? "MET" : "MISSED") }
    }' "$results"
done
