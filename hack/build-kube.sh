#!/usr/bin/env bash
# Builds the Kubernetes binaries the tests and the lab run (kube-apiserver, etcd,
# kube-controller-manager, kube-scheduler, kube-proxy, kubectl, kubelet) from the
# k8s.io/kubernetes Go module at one pinned version, through the Go module proxy
# only. The result is cached in $KUBE_BIN_DIR; a second run returns at once, and
# a cache that lacks one binary (an older cache without the kubelet) builds
# only that one.
set -euo pipefail

KUBE_VERSION="${KUBE_VERSION:-v1.36.3}"
STAGING_VERSION="v0${KUBE_VERSION#v1}"          # v1.36.3 -> v0.36.3
ETCD_VERSION="${ETCD_VERSION:-v3.6.8}"          # the version k8s.io/kubernetes pins
root="$(cd "$(dirname "$0")/.." && pwd)"
bin_dir="${KUBE_BIN_DIR:-$root/.cache/kube/$KUBE_VERSION/bin}"
# binary -> Go package
declare -A packages=(
  [kube-apiserver]=k8s.io/kubernetes/cmd/kube-apiserver
  [kube-controller-manager]=k8s.io/kubernetes/cmd/kube-controller-manager
  [kube-scheduler]=k8s.io/kubernetes/cmd/kube-scheduler
  [kube-proxy]=k8s.io/kubernetes/cmd/kube-proxy
  [kubectl]=k8s.io/kubernetes/cmd/kubectl
  [kubelet]=k8s.io/kubernetes/cmd/kubelet
  [etcd]=go.etcd.io/etcd/server/v3
)
binaries=(kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubectl kubelet etcd)

missing=()
for b in "${binaries[@]}"; do [[ -x "$bin_dir/$b" ]] || missing+=("$b"); done
if [[ ${#missing[@]} == 0 ]]; then
  echo "kubernetes $KUBE_VERSION binaries cached in $bin_dir"
  exit 0
fi

work="$root/.cache/kube/$KUBE_VERSION/src"
mkdir -p "$work" "$bin_dir"
cd "$work"
echo "building kubernetes $KUBE_VERSION (${missing[*]}) into $bin_dir (cold build takes several minutes)"

staging=(api apiextensions-apiserver apimachinery apiserver cli-runtime client-go
  cloud-provider cluster-bootstrap code-generator component-base component-helpers
  controller-manager cri-api cri-client cri-streaming csi-translation-lib
  dynamic-resource-allocation endpointslice externaljwt kms kube-aggregator
  kube-controller-manager kube-proxy kube-scheduler kubectl kubelet metrics mount-utils
  pod-security-admission sample-apiserver sample-cli-plugin sample-controller streaming)

{
  echo "module herald.local/kubebuild"
  echo
  echo "go 1.26.0"
  echo
  echo "require k8s.io/kubernetes $KUBE_VERSION"
  echo "require go.etcd.io/etcd/server/v3 $ETCD_VERSION"
  echo
  for m in "${staging[@]}"; do echo "replace k8s.io/$m => k8s.io/$m $STAGING_VERSION"; done
} > go.mod
cat > tools.go <<'GO'
//go:build tools

package kubebuild

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
GO
GOFLAGS=-mod=mod go mod tidy -e >/dev/null 2>&1 || true
GOFLAGS=-mod=mod go mod download all >/dev/null 2>&1 || true

ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1"
  ldflags+=" -X $pkg.gitMinor=$(echo "$KUBE_VERSION" | cut -d. -f2) -X $pkg.gitTreeState=clean"
done

build() { # name package
  echo "  go build $2"
  GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$bin_dir/$1.tmp" "$2"
  mv "$bin_dir/$1.tmp" "$bin_dir/$1"
}
for b in "${missing[@]}"; do build "$b" "${packages[$b]}"; done
echo "kubernetes $KUBE_VERSION binaries built in $bin_dir"
