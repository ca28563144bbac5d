#!/usr/bin/env bash
# deploy/k8s/validate.sh -- render the kustomize overlays and validate them OFFLINE against the
# real Kubernetes API schemas (and minimal schemas of the CRDs we use).
#
#   validate.sh [dir...]    render and validate each kustomization dir (default: every overlay
#                           and kafka/, the Strimzi cluster)
#   validate.sh render DIR  print DIR rendered (YAML)
#   validate.sh json PATH   print PATH (a kustomization dir, rendered, or a YAML file) as one
#                           JSON list (used by tests/ops)
#   validate.sh prepare     only build/install the tools into the cache
#
# Tools, built or installed once into the cache and reused (like deploy/local/infra.sh):
#   kustomize  v$KUSTOMIZE_VERSION, built from the Go module proxy (sigs.k8s.io/kustomize/kustomize/v5)
#   kubernetes-validate $KUBERNETES_VALIDATE_VERSION (PyPI) in its own venv; it bundles the API
#              schemas of every Kubernetes minor version, so validation needs no network.
# CRDs (Kafka, KafkaNodePool, KafkaTopic, KafkaUser, PrometheusRule) are not in the core schemas: deploy/k8s/schemas/ has minimal
# schemas written from the Strimzi and Prometheus Operator CRDs; any other unknown kind fails.
#
# Environment:
#   JM_CACHE_DIR   cache (default ${XDG_CACHE_HOME:-~/.cache}/junipermarket)
#   K8S_VERSION    Kubernetes version to validate against (default 1.32.0)
# Exit status: 0 valid; 1 invalid or a tool could not be prepared (one `k8s-validate: ...` line).
set -euo pipefail

readonly KUSTOMIZE_VERSION=5.7.1
readonly KUBERNETES_VALIDATE_VERSION=1.37.0
K8S_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly K8S_DIR
CACHE_DIR=${JM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/junipermarket}
readonly CACHE_DIR
readonly KUSTOMIZE=$CACHE_DIR/kustomize-$KUSTOMIZE_VERSION/bin/kustomize
readonly VALIDATE_VENV=$CACHE_DIR/kubernetes-validate-$KUBERNETES_VALIDATE_VERSION
readonly K8S_VERSION=${K8S_VERSION:-1.32.0}

die() {
  printf 'k8s-validate: %s\n' "$*" >&2
  exit 1
}

prepare() {
  mkdir -p "$CACHE_DIR"
  # Concurrent callers (make and a test run) build once: the second waits for the first.
  exec 9>"$CACHE_DIR/.k8s-tools.lock"
  flock -w 900 9 || die "timed out waiting for another build of the tools"
  if [[ ! -x $KUSTOMIZE ]]; then
    command -v go >/dev/null || die "go not found (needed once to build kustomize)"
    echo "k8s-validate: building kustomize v$KUSTOMIZE_VERSION (once, ~1-2 min)" >&2
    local tmp
    tmp=$(mktemp -d "$CACHE_DIR/kustomize-build.XXXXXX")
    GOBIN=$tmp GOFLAGS=-mod=mod timeout 900 go install "sigs.k8s.io/kustomize/kustomize/v5@v$KUSTOMIZE_VERSION" >&2 ||
      {
        rm -rf "$tmp"
        die "building kustomize failed"
      }
    mkdir -p "$(dirname "$KUSTOMIZE")"
    mv "$tmp/kustomize" "$KUSTOMIZE"
    rm -rf "$tmp"
  fi
  if [[ ! -f $VALIDATE_VENV/.complete ]]; then
    command -v uv >/dev/null || die "uv not found (needed once to install kubernetes-validate)"
    echo "k8s-validate: installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION (once)" >&2
    rm -rf "$VALIDATE_VENV"
    uv venv -q --python 3.11 "$VALIDATE_VENV" >&2 || die "creating the venv failed"
    VIRTUAL_ENV=$VALIDATE_VENV uv pip install -q "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" >&2 ||
      die "installing kubernetes-validate failed"
    touch "$VALIDATE_VENV/.complete"
  fi
  exec 9>&-
}

render() { # kustomization dir
  [[ -f $1/kustomization.yaml ]] || die "$1 has no kustomization.yaml"
  "$KUSTOMIZE" build "$1" || die "kustomize build $1 failed"
}

checker() {
  "$VALIDATE_VENV/bin/python" "$K8S_DIR/validate.py" --schemas "$K8S_DIR/schemas" "$@"
}

main() {
  case ${1:-} in
    prepare)
      prepare
      return
      ;;
    render)
      (($# == 2)) || die "usage: validate.sh render DIR"
      prepare
      render "$2"
      return
      ;;
    json)
      (($# == 2)) || die "usage: validate.sh json PATH"
      prepare
      if [[ -f $2 ]]; then checker --json <"$2"; else render "$2" | checker --json; fi
      return
      ;;
  esac
  prepare
  local dirs=("$@") dir failed=0
  if ((${#dirs[@]} == 0)); then dirs=("$K8S_DIR"/overlays/*/ "$K8S_DIR"/kafka/); fi
  for dir in "${dirs[@]}"; do
    dir=${dir%/}
    render "$dir" | checker --kubernetes-version "$K8S_VERSION" --name "$dir" || failed=1
  done
  ((failed == 0)) || die "invalid manifests (see above)"
  echo "k8s-validate: ${#dirs[@]} kustomizations valid against Kubernetes $K8S_VERSION"
}

main "$@"
