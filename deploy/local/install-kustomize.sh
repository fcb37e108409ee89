#!/usr/bin/env bash
# Installs kustomize into the active virtualenv's bin (beside python), from the Go module proxy with
# `go install`: tests/integration/test_kubernetes.py renders deploy/kubernetes with it, and with
# `kubectl kustomize` too when kubectl is installed. Idempotent: does nothing when the pinned version is there.
#
#   deploy/local/install-kustomize.sh          (run by deploy/local/test, after the virtualenv is active)
#
# Environment:
#   KUSTOMIZE_VERSION   the sigs.k8s.io/kustomize/kustomize/v5 version (default below; needs Go >= 1.24)
#   KUSTOMIZE_BIN_DIR   where the binary goes (default: the directory of the active python, else ~/.local/bin)
# Without Go it says so and exits 0: the tests then render with kubectl alone, or skip saying why.
set -euo pipefail

version=${KUSTOMIZE_VERSION:-v5.8.1}
if [ -n "${KUSTOMIZE_BIN_DIR:-}" ]; then
  bin_dir=$KUSTOMIZE_BIN_DIR
elif [ -n "${VIRTUAL_ENV:-}" ]; then
  bin_dir=$VIRTUAL_ENV/bin
else
  bin_dir=$HOME/.local/bin
fi

if [ -x "$bin_dir/kustomize" ] && [ "$("$bin_dir/kustomize" version 2>/dev/null)" = "$version" ]; then
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  echo "install-kustomize: no Go toolchain; the Kubernetes manifests will be rendered by kubectl if present" >&2
  exit 0
fi
echo "==> installing kustomize $version into $bin_dir (go install)"
mkdir -p "$bin_dir"
GOBIN=$bin_dir GOFLAGS=-mod=mod go install "sigs.k8s.io/kustomize/kustomize/v5@$version"
"$bin_dir/kustomize" version
