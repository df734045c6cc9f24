# Shell helpers shared by the project's scripts; source it after setting
# LOG_PREFIX. PostgreSQL is the local server on 127.0.0.1:5432.

PG_HOST=${PG_HOST:-127.0.0.1}
PG_PORT=${PG_PORT:-5432}

log() { printf '[%s] %s\n' "${LOG_PREFIX:-shop}" "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    log "need root for: $*  (install sudo or run as root)"; exit 1
  fi
}

apt_install() {
  log "installing $* with apt"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# Runs psql as the database superuser: over TCP where trust auth allows it,
# else as the postgres OS user over the local socket (peer auth). Without
# `-d` it connects to the `postgres` database.
psql_admin() {
  if psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres -tAc 'SELECT 1' >/dev/null 2>&1 </dev/null; then
    psql -q -v ON_ERROR_STOP=1 -h "$PG_HOST" -p "$PG_PORT" -U postgres -tA "$@"
  else
    as_root runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 -p "$PG_PORT" -tA "$@"
  fi
}

# --- running the three services from their binaries ---------------------------
# shop_start BIN PREFIX DB_TAG LOG_DIR PORT_AUTH PORT_CATALOG PORT_ORDER
# starts auth-svc, catalog-svc and order-svc from BIN on fresh databases
# shop_<DB_TAG>_{auth,catalog,orders}, with their queues under AMQP_PREFIX=PREFIX
# (deleted before and after), and waits until each is ready. Settings the
# caller exported (RUST_LOG, RATE_LIMITS, ...) reach the services. Sets
# AUTH_URL, CATALOG_URL and ORDER_URL; shop_stop stops them.
SHOP_PIDS=()
SHOP_QUEUE_PREFIX=

shop_delete_queues() {
  [ -n "$SHOP_QUEUE_PREFIX" ] || return 0
  local q name
  for q in catalog.order-events order.stock-events order.product-events; do
    for name in "$SHOP_QUEUE_PREFIX$q" "$SHOP_QUEUE_PREFIX$q.dlq"; do
      rabbitmqctl -q delete_queue "$name" >/dev/null 2>&1 || true
    done
  done
  # Each replica's own order-outcome queue is exclusive and goes with it.
}

shop_stop() {
  if [ ${#SHOP_PIDS[@]} -gt 0 ]; then
    kill -TERM "${SHOP_PIDS[@]}" 2>/dev/null || true
    wait "${SHOP_PIDS[@]}" 2>/dev/null || true
  fi
  SHOP_PIDS=()
  shop_delete_queues
}

# shop_start_replica BIN SERVICE TAG LOG_DIR PORT: one more replica of SERVICE
# (auth-svc, catalog-svc or order-svc) on PORT, against what shop_start set up.
shop_start_replica() {
  local bin=$1 service=$2 tag=$3 logs=$4 port=$5 db
  case $service in auth-svc) db=auth ;; catalog-svc) db=catalog ;; *) db=orders ;; esac
  AMQP_PREFIX=$SHOP_QUEUE_PREFIX HTTP_ADDR=127.0.0.1:$port \
    JWKS_URL=$AUTH_URL/.well-known/jwks.json CATALOG_URL=$CATALOG_URL \
    DATABASE_URL=postgres://shop:shop@127.0.0.1:5432/shop_${tag}_$db \
    "$bin/$service" serve >"$logs/$service-$port.log" 2>&1 &
  SHOP_PIDS+=($!)
  for _ in $(seq 1 120); do
    curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && return 0
    sleep 0.25
  done
  log "$service on port $port did not become ready"; cat "$logs/$service-$port.log"; return 1
}

shop_start() {
  local bin=$1 prefix=$2 tag=$3 logs=$4; shift 4
  local ports=("$@") dbs=(auth catalog orders) services=(auth-svc catalog-svc order-svc) i port
  SHOP_QUEUE_PREFIX=$prefix
  # Our own services, never whatever else answers on these ports.
  for port in "${ports[@]}"; do
    if curl -fsS -o /dev/null "http://127.0.0.1:$port/healthz" 2>/dev/null; then
      log "port $port is taken by another process; stop it first"; return 1
    fi
  done
  for i in 0 1 2; do
    psql_admin -d postgres -c "DROP DATABASE IF EXISTS shop_${tag}_${dbs[$i]} WITH (FORCE)" \
      -c "CREATE DATABASE shop_${tag}_${dbs[$i]} OWNER shop"
  done
  shop_delete_queues
  AUTH_URL=http://127.0.0.1:${ports[0]}
  CATALOG_URL=http://127.0.0.1:${ports[1]}
  ORDER_URL=http://127.0.0.1:${ports[2]}
  export AUTH_URL CATALOG_URL ORDER_URL
  for i in 0 1 2; do
    AMQP_PREFIX=$prefix HTTP_ADDR=127.0.0.1:${ports[$i]} \
      JWKS_URL=$AUTH_URL/.well-known/jwks.json CATALOG_URL=$CATALOG_URL \
      DATABASE_URL=postgres://shop:shop@127.0.0.1:5432/shop_${tag}_${dbs[$i]} \
      "$bin/${services[$i]}" serve >"$logs/${services[$i]}.log" 2>&1 &
    SHOP_PIDS+=($!)
    for _ in $(seq 1 120); do
      curl -fsS "http://127.0.0.1:${ports[$i]}/readyz" >/dev/null 2>&1 && break
      sleep 0.25
    done
    if ! kill -0 "${SHOP_PIDS[-1]}" 2>/dev/null || ! curl -fsS "http://127.0.0.1:${ports[$i]}/readyz" >/dev/null; then
      log "${services[$i]} did not become ready"; cat "$logs/${services[$i]}.log"; return 1
    fi
  done
}
