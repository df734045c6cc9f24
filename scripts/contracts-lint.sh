#!/usr/bin/env bash
# `make contracts-lint`: the committed contracts are linted by maintained
# tools, installed from the npm registry into .tools/contracts on first use:
# Spectral (the OpenAPI document, zero errors) and the AsyncAPI CLI (the
# AsyncAPI document). Node.js and npm are installed with apt when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
LOG_PREFIX=contracts
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

SPECTRAL_VERSION=6.16.3
ASYNCAPI_VERSION=6.2.0
TOOLS=.tools/contracts
command -v npm >/dev/null || apt_install nodejs npm
if [ ! -x "$TOOLS/node_modules/.bin/spectral" ] || [ ! -x "$TOOLS/node_modules/.bin/asyncapi" ]; then
  log "installing Spectral $SPECTRAL_VERSION and the AsyncAPI CLI $ASYNCAPI_VERSION into $TOOLS"
  mkdir -p "$TOOLS"
  npm install --silent --no-audit --no-fund --prefix "$TOOLS" \
    "@stoplight/spectral-cli@$SPECTRAL_VERSION" "@asyncapi/cli@$ASYNCAPI_VERSION" >/dev/null
  # It would otherwise try to send usage data on every run.
  "$TOOLS/node_modules/.bin/asyncapi" config analytics --disable >/dev/null 2>&1 || true
fi

log "spectral lint docs/openapi.json"
"$TOOLS/node_modules/.bin/spectral" lint docs/openapi.json --ruleset .spectral.yaml --fail-severity error
log "asyncapi validate docs/asyncapi.yaml"
"$TOOLS/node_modules/.bin/asyncapi" validate docs/asyncapi.yaml --fail-severity error
log "contracts valid"
