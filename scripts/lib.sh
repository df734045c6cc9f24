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
