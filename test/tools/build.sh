#!/usr/bin/env bash
# Builds the local control plane's binaries (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl,
# kwok, helm) from the pinned tool modules beside this script into BIN_DIR (default: <repo>/.cache/bin).
# Each tool module is rebuilt only when its key changes: its go.mod, go.sum and sources plus the Go version.
# Usage: build.sh [BIN_DIR]
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
bin_dir=${1:-$repo/.cache/bin}
mkdir -p "$bin_dir"

# module directory -> packages to build (each yields a binary named after its directory)
declare -A packages=(
  [etcd]="./etcd"
  [kube]="./kube-apiserver ./kube-controller-manager ./kube-scheduler ./kubectl"
  [kwok]="./kwok"
  [helm]="helm.sh/helm/v3/cmd/helm"
)

key_of() {
  (cd "$here/$1" && { go version; find . -type f \( -name '*.go' -o -name 'go.mod' -o -name 'go.sum' \) | LC_ALL=C sort | xargs sha256sum; }) |
    sha256sum | cut -c1-16
}

for module in etcd kwok kube helm; do
  key=$(key_of "$module")
  stamp="$bin_dir/.$module.key"
  missing=0
  for p in ${packages[$module]}; do [ -x "$bin_dir/$(basename "$p")" ] || missing=1; done
  if [ "$missing" = 0 ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ]; then
    echo "cluster-bins: $module up to date ($key)"
    continue
  fi
  echo "cluster-bins: building $module ($key) into $bin_dir"
  start=$SECONDS
  # shellcheck disable=SC2086 # word splitting of the package list is intended
  (cd "$here/$module" && go build -trimpath -o "$bin_dir/" ${packages[$module]})
  echo "$key" >"$stamp"
  echo "cluster-bins: built $module in $((SECONDS - start))s"
done
