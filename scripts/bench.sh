#!/usr/bin/env bash
# `make bench`: Shop against the bound of its own machine, in one sitting.
#
# 1. The PostgreSQL bound of one order's saga: the pgbench script kept in
#    bench/pg-bound/ (5 commits per order, plain SQL), median of three runs.
# 2. The release binaries with production defaults (RUST_LOG=warn) on fresh
#    databases of their own, driven from outside by `loadgen` (a separate
#    process): one order at a time on an idle system, a closed loop of 32
#    clients (polling, then with `Prefer: wait`), an open loop at a fixed
#    rate, and 64 buyers of one product; the stock invariant is checked
#    after each.
# 3. Reads with wrk: /healthz, /products/{id}, /products?limit=20.
#
# Prints ratios (Shop / bound, reads / healthz) and writes
# target/bench/report.md. Nothing here asserts a speed.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=${CARGO_TARGET_DIR:-target}
OUT=${BENCH_OUT:-$TARGET/bench}
mkdir -p "$OUT"
rm -f "$OUT"/*.json "$OUT"/*.txt
SECS=${BENCH_SECS:-20}
RATE=${BENCH_RATE:-100}
PREFIX=bench.
PORTS=(18081 18082 18083)
LOG_PREFIX=bench
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

command -v wrk >/dev/null || apt_install wrk
command -v pgbench >/dev/null || apt_install postgresql-contrib

# BENCH_BIN: measure binaries built elsewhere (say, an earlier commit's).
BIN=${BENCH_BIN:-$TARGET/release}
if [ -z "${BENCH_BIN:-}" ]; then
  log "building the release binaries"
  cargo build --release -q -p auth-svc -p catalog-svc -p order-svc -p loadgen
fi

# --- 1. the PostgreSQL bound --------------------------------------------------
log "loading the PostgreSQL bound's schema (database bench)"
psql_admin -d postgres -c "DO \$\$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'bench') THEN
      CREATE ROLE bench LOGIN PASSWORD 'bench'; END IF; END \$\$;"
[ "$(psql_admin -d postgres -c "SELECT 1 FROM pg_database WHERE datname = 'bench'")" = 1 ] ||
  psql_admin -d postgres -c "CREATE DATABASE bench OWNER bench"
export PGPASSWORD=bench
psql -q -h 127.0.0.1 -U bench -d bench -f bench/pg-bound/saga_schema.sql >/dev/null

# --- 2. Shop ------------------------------------------------------------------
trap shop_stop EXIT
# Rate limits off: this measures the saga, not the limits.
export RUST_LOG=${RUST_LOG:-warn} RATE_LIMITS=off
shop_start "$BIN" "$PREFIX" bench "$OUT" "${PORTS[@]}"

export CATALOG_DATABASE_URL=postgres://shop:shop@127.0.0.1:5432/shop_bench_catalog
export ORDERS_DATABASE_URL=postgres://shop:shop@127.0.0.1:5432/shop_bench_orders

bound_runs=()
for run in 1 2 3; do
  psql_admin -d postgres -c checkpoint >/dev/null
  tps=$(pgbench -h 127.0.0.1 -U bench -n -M prepared -f bench/pg-bound/saga_order.sql -c 16 -j 2 -T 15 bench 2>&1 |
    tee "$OUT/pgbench-$run.txt" | sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p')
  failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$OUT/pgbench-$run.txt")
  [ "${failed:-0}" = 0 ] || log "pgbench run $run had $failed failed transactions"
  log "PostgreSQL bound, run $run: $tps orders/s"
  bound_runs+=("$tps")
done
BOUND=$(printf '%s\n' "${bound_runs[@]}" | sort -n | sed -n 2p)
log "PostgreSQL bound (median of 3): $BOUND orders/s"

loadgen() {
  local name=$1; shift
  psql_admin -d postgres -c checkpoint >/dev/null
  log "orders: $name ($*)"
  "$BIN/loadgen" "$@" | tee "$OUT/$name.json" >&2
}
loadgen idle-wait idle --count 40 --wait
loadgen closed-poll closed --clients 32 --secs "$SECS"
loadgen closed-wait closed --clients 32 --secs "$SECS" --wait
loadgen open-wait open --rate "$RATE" --secs "$SECS" --wait
loadgen open-poll open --rate "$RATE" --secs "$SECS"
loadgen hot-wait hot --clients 64 --secs "$SECS" --wait
# The same product with four catalog-svc replicas consuming and twice the
# buyers: replicas must not make a hot product slower.
extra=()
for port in 18084 18085 18086; do
  shop_start_replica "$BIN" catalog-svc bench "$OUT" "$port"
  extra+=("${SHOP_PIDS[-1]}")
done
loadgen hot4-wait hot --clients 128 --secs "$SECS" --wait
kill -TERM "${extra[@]}" && wait "${extra[@]}" 2>/dev/null || true
SHOP_PIDS=("${SHOP_PIDS[@]:0:3}")
DLQ=$(rabbitmqctl -q list_queues name messages | awk -v p="^${PREFIX//./\\.}.*\\.dlq$" '$1 ~ p {s += $2} END {print s + 0}')
log "messages in dead-letter queues after the order runs: $DLQ"

# --- logins against the bcrypt bound ------------------------------------------
# auth-svc runs with its production cost (12) and bounds (one hash per core,
# twice that waiting); the bound is the same cost on every core, nothing else.
loadgen bcrypt-bound bcrypt-bound --secs 10 --cost 12
loadgen login login --clients 32 --secs "$SECS"

# --- 3. reads -------------------------------------------------------------------
token=$(curl -fsS -X POST "$AUTH_URL/login" -H 'content-type: application/json' \
  -d "{\"username\":\"$(psql -h 127.0.0.1 -U shop -d shop_bench_auth -tAc 'SELECT username FROM users LIMIT 1' 2>/dev/null)\",\"password\":\"bench-password-1\"}" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
product=$(curl -fsS -X POST "$CATALOG_URL/products" -H "authorization: Bearer $token" -H 'content-type: application/json' \
  -d '{"name":"Read me","description":"a product to read","price":"9.99","stock":5}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
reads() {
  local name=$1 url=$2
  log "reads: $name"
  wrk -t2 -c32 -d10s --latency "$url" >"$OUT/wrk-$name.txt"
}
reads healthz "$CATALOG_URL/healthz"
reads product "$CATALOG_URL/products/$product"
reads list "$CATALOG_URL/products?limit=20"

shop_stop
trap - EXIT

# --- report -------------------------------------------------------------------
BOUND=$BOUND OUT=$OUT RATE=$RATE DLQ=$DLQ python3 scripts/bench_report.py | tee "$OUT/report.md"
log "written to $OUT/report.md"
