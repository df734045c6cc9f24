#!/usr/bin/env bash
# Brings up what Shop needs locally, idempotently: PostgreSQL, RabbitMQ and
# Redis (installed with apt when missing, started when down), the `shop` role and
# one database per service. Safe to run again and again; used by `make run`,
# `make test` and CI.
set -euo pipefail

DATABASES=(shop_auth shop_catalog shop_orders)
LOG_PREFIX=dev-stack
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Polls a command until it succeeds or the deadline passes.
wait_for() {
  local what=$1 seconds=$2; shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then log "$what did not come up within ${seconds}s"; return 1; fi
    sleep 1
  done
}

pg_up() { pg_isready -q -h "$PG_HOST" -p "$PG_PORT"; }

ensure_postgres() {
  if ! command -v pg_ctlcluster >/dev/null || ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    apt_install postgresql postgresql-client
  fi
  if pg_up; then log "PostgreSQL is running"; return; fi
  local version
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  log "starting PostgreSQL $version"
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  wait_for PostgreSQL 60 pg_up
}

ensure_databases() {
  psql_admin -c "DO \$\$ BEGIN
      IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'shop') THEN
        CREATE ROLE shop LOGIN PASSWORD 'shop' CREATEDB;
      ELSE
        ALTER ROLE shop LOGIN CREATEDB;
      END IF;
    END \$\$;" >/dev/null
  for db in "${DATABASES[@]}"; do
    if [ "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = '$db'")" != "1" ]; then
      log "creating database $db"
      psql_admin -c "CREATE DATABASE $db OWNER shop" >/dev/null
    fi
  done
  log "role shop and databases ${DATABASES[*]} are ready"
}

ensure_rabbitmq() {
  if ! command -v rabbitmq-server >/dev/null; then
    apt_install rabbitmq-server
  fi
  if as_root rabbitmq-diagnostics -q check_running >/dev/null 2>&1; then
    log "RabbitMQ is running"; return
  fi
  log "starting RabbitMQ"
  as_root rabbitmq-server -detached >/dev/null 2>&1 || true
  wait_for RabbitMQ 120 as_root rabbitmq-diagnostics -q check_running
  log "RabbitMQ is running"
}

redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }

ensure_redis() {
  if ! command -v redis-server >/dev/null; then
    apt_install redis-server
  fi
  if redis_up; then log "Redis is running"; return; fi
  log "starting Redis"
  # A cache only: nothing is kept on disk.
  as_root redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
  wait_for Redis 30 redis_up
  log "Redis is running"
}

ensure_postgres
ensure_databases
ensure_rabbitmq
ensure_redis
