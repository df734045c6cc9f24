#!/usr/bin/env bash
# Builds, migrates and runs every Shop service on this machine, against the
# stack `scripts/dev-stack.sh` brought up. Ctrl-C stops them all gracefully.
set -euo pipefail
cd "$(dirname "$0")/.."

# name:port, in start order (auth first: the others fetch its JWKS).
ALL_SERVICES=(auth-svc:8081 catalog-svc:8082 order-svc:8083)
SERVICES=()
for entry in "${ALL_SERVICES[@]}"; do
  [ -d "${entry%%:*}" ] && SERVICES+=("$entry")
done

cargo build --bins
export LOG_FORMAT="${LOG_FORMAT:-pretty}"

pids=()
stop() {
  trap - INT TERM EXIT
  if [ ${#pids[@]} -gt 0 ]; then
    echo "stopping ${#pids[@]} service(s)..."
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  fi
}
trap stop INT TERM EXIT

for entry in "${SERVICES[@]}"; do
  name=${entry%%:*}
  target/debug/"$name" migrate
  target/debug/"$name" serve &
  pids+=($!)
done

for entry in "${SERVICES[@]}"; do
  name=${entry%%:*} port=${entry##*:}
  for _ in $(seq 1 60); do
    curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
    sleep 0.5
  done
done

echo
echo "Shop is running (Ctrl-C stops it):"
for entry in "${SERVICES[@]}"; do
  name=${entry%%:*} port=${entry##*:}
  printf '  %-12s http://127.0.0.1:%s   (API description: /openapi.json)\n' "$name" "$port"
done
echo

# Returns when any service exits (or on Ctrl-C); the trap stops the rest.
wait -n "${pids[@]}"
