#!/usr/bin/env bash
# Builds the local cluster's binaries from the pinned tool modules beside this script into BIN_DIR (default:
# <repo>/.cache/bin): the control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl),
# kwok, helm (3, and 4 in BIN_DIR/helm4), and the real node (kubelet, kube-proxy, cri-cleanup, containerd, its runc shim, the CNI plugins in
# BIN_DIR/cni, the distribution registry) plus imagebuild, which builds images without Docker, and the Prometheus
# server that scrapes the real node's pods for the analysis tests.
# Each tool module is rebuilt only when its key changes: its go.mod, go.sum and sources plus the Go version.
# Usage: build.sh [BIN_DIR] [MODULE...]   (no MODULE: all of them)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
bin_dir=${1:-$repo/.cache/bin}
shift || true
mkdir -p "$bin_dir/cni" "$bin_dir/helm4"
bin_dir=$(cd "$bin_dir" && pwd)

containerd=github.com/containerd/containerd/v2
cni=github.com/containernetworking/plugins/plugins
# module directory -> packages to build (each yields a binary named after its last path element)
declare -A packages=(
  [etcd]="./etcd"
  [kube]="./kube-apiserver ./kube-controller-manager ./kube-scheduler ./kubectl ./kubelet ./kube-proxy ./cri-cleanup"
  [kwok]="./kwok"
  [helm]="helm.sh/helm/v3/cmd/helm"
  [helm4]="helm.sh/helm/v4/cmd/helm"
  [containerd]="$containerd/cmd/containerd $containerd/cmd/ctr $containerd/cmd/containerd-shim-runc-v2"
  [cni]="$cni/main/bridge $cni/ipam/host-local $cni/main/loopback $cni/meta/portmap"
  [registry]="github.com/distribution/distribution/v3/cmd/registry"
  [imagebuild]="."
  [prometheus]="github.com/prometheus/prometheus/cmd/prometheus"
)
# where a module's binaries go, relative to BIN_DIR
declare -A subdir=([cni]=cni [helm4]=helm4)

build() {
  local module=$1 out=$bin_dir/${subdir[$1]:-}
  case $module in
  containerd)
    # No cgo: the btrfs snapshotter needs libbtrfs headers and the node uses overlayfs. The shim is built without
    # grpc, as upstream ships it.
    local ld="-s -w -X $containerd/version.Version=v2.4.2"
    CGO_ENABLED=0 go build -trimpath -tags "urfave_cli_no_docs no_btrfs" -ldflags "$ld" -o "$out/" "$containerd/cmd/containerd" "$containerd/cmd/ctr"
    CGO_ENABLED=0 go build -trimpath -tags "urfave_cli_no_docs no_grpc" -ldflags "$ld" -o "$out/" "$containerd/cmd/containerd-shim-runc-v2"
    ;;
  cni | registry | imagebuild | prometheus)
    # shellcheck disable=SC2086 # word splitting of the package list is intended
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out/" ${packages[$module]}
    ;;
  *)
    # shellcheck disable=SC2086
    go build -trimpath -o "$out/" ${packages[$module]}
    ;;
  esac
}

binary_of() {
  local module=$1 pkg=$2
  [ "$pkg" = . ] && pkg=$module
  echo "$bin_dir/${subdir[$module]:+${subdir[$module]}/}$(basename "$pkg")"
}

key_of() {
  (cd "$here/$1" && { go version; find . -type f \( -name '*.go' -o -name 'go.mod' -o -name 'go.sum' \) | LC_ALL=C sort | xargs sha256sum; }) |
    sha256sum | cut -c1-16
}

modules=("$@")
[ ${#modules[@]} -gt 0 ] || modules=(etcd kwok kube helm helm4 containerd cni registry imagebuild prometheus)
for module in "${modules[@]}"; do
  [ -n "${packages[$module]:-}" ] || { echo "cluster-bins: unknown module $module" >&2; exit 2; }
  key=$(key_of "$module")
  stamp="$bin_dir/.$module.key"
  missing=0
  for p in ${packages[$module]}; do [ -x "$(binary_of "$module" "$p")" ] || missing=1; done
  if [ "$missing" = 0 ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ]; then
    echo "cluster-bins: $module up to date ($key)"
    continue
  fi
  echo "cluster-bins: building $module ($key) into $bin_dir"
  start=$SECONDS
  (cd "$here/$module" && build "$module")
  echo "$key" >"$stamp"
  echo "cluster-bins: built $module in $((SECONDS - start))s"
done
