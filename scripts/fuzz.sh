#!/usr/bin/env bash
# `make fuzz`: schemathesis, with every check, against each service's
# /openapi.json. The debug binaries run on fresh databases of their own; the
# run fails on any 5xx, any response that does not match the documented
# schema and any status a document does not declare. schemathesis is
# installed from PyPI into .tools/fuzz on first use.
#
# FUZZ_EXAMPLES (default 100) bounds the examples per operation and phase.
set -euo pipefail
cd "$(dirname "$0")/.."

LOG_PREFIX=fuzz
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
SCHEMATHESIS_VERSION=4.32.5
TOOLS=.tools/fuzz
TARGET=${CARGO_TARGET_DIR:-target}
OUT=$TARGET/fuzz
PORTS=(18091 18092 18093)
mkdir -p "$OUT"

if [ "$("$TOOLS/bin/st" --version 2>/dev/null | awk '{print $NF}')" != "$SCHEMATHESIS_VERSION" ]; then
  log "installing schemathesis $SCHEMATHESIS_VERSION into $TOOLS"
  python3 -m venv "$TOOLS"
  "$TOOLS/bin/pip" install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

log "building the services"
cargo build -q -p auth-svc -p catalog-svc -p order-svc

# The limits are exercised by the test suite; here they would only stop the
# fuzzer short of the handlers. They stay on, just high.
export RUST_LOG=${RUST_LOG:-warn} BCRYPT_COST=4 REDIS_KEY_PREFIX="fuzz:$$:"
for policy in LOGIN_IP LOGIN_ACCOUNT REGISTER_IP WRITES_USER; do
  export "RATE_LIMIT_$policy=50000/min"
done
trap shop_stop EXIT
shop_start "$TARGET/debug" fuzz. fuzz "$OUT" "${PORTS[@]}"

# A customer and an admin to send as the bearer; one product to read.
json_field() { python3 -c "import json,sys; print(json.load(sys.stdin)[\"$1\"])"; }
token_for() {
  curl -fsS -X POST "$AUTH_URL/register" -H 'content-type: application/json' \
    -d "{\"username\":\"$1\",\"email\":\"$1@example.com\",\"password\":\"fuzz-password-1\"}" >/dev/null
  [ "${2:-}" != admin ] || DATABASE_URL=postgres://shop:shop@127.0.0.1:5432/shop_fuzz_auth \
    "$TARGET/debug/auth-svc" grant-admin "$1" >/dev/null
  curl -fsS -X POST "$AUTH_URL/login" -H 'content-type: application/json' \
    -d "{\"username\":\"$1\",\"password\":\"fuzz-password-1\"}" | json_field access_token
}
customer=$(token_for fuzz-customer)
curl -fsS -X POST "$CATALOG_URL/products" -H "authorization: Bearer $customer" \
  -H 'content-type: application/json' \
  -d '{"name":"Fuzzed mug","description":"","price":"9.99","stock":100}' >/dev/null

failed=0
for url in "$AUTH_URL" "$CATALOG_URL" "$ORDER_URL"; do
  log "schemathesis against $url/openapi.json"
  # One worker: Python 3.11's parser is not thread-safe, and hypothesis
  # parses source while it generates (a crash seen with two).
  if ! "$TOOLS/bin/st" --config-file scripts/schemathesis.toml run "$url/openapi.json" --url "$url" \
      --checks all --max-examples "${FUZZ_EXAMPLES:-100}" --workers 1 \
      --header "Authorization: Bearer $customer" \
      --seed 1 --no-color \
      --report junit --report-dir "$OUT" >"$OUT/$(basename "$url").txt" 2>&1; then
    failed=1
    cat "$OUT/$(basename "$url").txt"
  else
    tail -5 "$OUT/$(basename "$url").txt"
  fi
done
[ "$failed" = 0 ] || { log "schemathesis found failures (reports in $OUT)"; exit 1; }
log "no failures"
