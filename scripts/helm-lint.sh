#!/usr/bin/env bash
# Lints the Helm chart and validates what it renders: `helm lint --strict`,
# then `helm template` with the default values, with every toggle on, and
# with existing Secrets, each validated against the Kubernetes schemas
# (kubernetes-validate --strict) and the Prometheus Operator schemas. Also
# checks that every expected kind is rendered. Fails on any problem.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/tools.sh

CHART=helm/shop
K8S_VERSION=${K8S_VERSION:-1.30.0}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

declare -A VARIANTS=(
  [defaults]=""
  [all-toggles]="--set ingress.enabled=true --set ingress.className=nginx \
    --set ingress.tls[0].secretName=shop-tls --set ingress.tls[0].hosts[0]=shop.example.com \
    --set networkPolicy.enabled=true --set monitoring.serviceMonitor.enabled=true \
    --set monitoring.prometheusRule.enabled=true \
    --set monitoring.dashboard.enabled=true"
  [existing-secrets]="--set postgres.existingSecret=shop-db --set rabbitmq.existingSecret=shop-mq --set redis.existingSecret=shop-redis \
    --set jwt.existingSecret=shop-jwt --set services.auth.autoscaling.enabled=false \
    --set podDisruptionBudget.enabled=false --set migrations.enabled=false --set serviceAccount.create=false"
)

# Kinds each variant must contain (kind=count).
declare -A EXPECT=(
  [defaults]="Deployment=3 Service=3 HorizontalPodAutoscaler=3 PodDisruptionBudget=3 Job=3 ConfigMap=3 Secret=5 ServiceAccount=1"
  [all-toggles]="Deployment=3 Service=3 HorizontalPodAutoscaler=3 PodDisruptionBudget=3 Job=3 ConfigMap=4 Secret=5 ServiceAccount=1 Ingress=1 NetworkPolicy=3 ServiceMonitor=1 PrometheusRule=1"
  [existing-secrets]="Deployment=3 Service=3 HorizontalPodAutoscaler=2 ConfigMap=3"
)

ensure_crd_validator() {
  command -v node >/dev/null && command -v npm >/dev/null || return 1
  if [ ! -d .tools/node/node_modules/@kubernetes-models/prometheus-operator ]; then
    echo "[helm-lint] installing the Prometheus Operator schemas (npm) into .tools/node" >&2
    mkdir -p .tools/node
    npm install --silent --no-audit --no-fund --prefix .tools/node \
      @kubernetes-models/prometheus-operator@6.0.0 js-yaml@4.1.0 >/dev/null
  fi
}

status=0
for variant in defaults all-toggles existing-secrets; do
  # shellcheck disable=SC2086
  args=(${VARIANTS[$variant]})
  echo "== $variant"
  helm lint --strict "$CHART" "${args[@]}" >"$OUT/lint.txt" 2>&1 || { cat "$OUT/lint.txt"; status=1; continue; }
  helm template shop "$CHART" --namespace shop "${args[@]}" >"$OUT/$variant.yaml" || { status=1; continue; }
  if ! kubernetes-validate --strict --quiet -k "$K8S_VERSION" "$OUT/$variant.yaml"; then
    echo "[helm-lint] $variant: a manifest does not match the Kubernetes $K8S_VERSION schemas" >&2
    status=1
  fi
  if grep -q '^apiVersion: monitoring.coreos.com/' "$OUT/$variant.yaml"; then
    if ensure_crd_validator; then
      node scripts/validate-crds.mjs .tools/node/node_modules "$OUT/$variant.yaml" || status=1
    else
      echo "[helm-lint] node/npm not found: ServiceMonitor/PrometheusRule checked by helm lint only" >&2
    fi
  fi
  for pair in ${EXPECT[$variant]}; do
    kind=${pair%=*} want=${pair#*=}
    got=$(grep -c "^kind: $kind\$" "$OUT/$variant.yaml" || true)
    if [ "$got" != "$want" ]; then
      echo "[helm-lint] $variant: expected $want $kind, rendered $got" >&2
      status=1
    fi
  done
  # The dashboard must be valid JSON.
  if [ "$variant" = all-toggles ]; then
    python3 -m json.tool helm/shop/dashboards/shop.json >/dev/null || { echo "[helm-lint] dashboard JSON is invalid" >&2; status=1; }
  fi
done
[ "$status" -eq 0 ] && echo "helm-lint: chart valid in every variant"
exit "$status"
