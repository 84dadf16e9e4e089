#!/usr/bin/env bash
# Builds the local control plane (kube-apiserver, etcd, helm; kubelet, kube-controller-manager
# and kube-scheduler for the end-to-end test's node) from published Go modules into a cache
# outside the repo, once per version. Safe to re-run: cached binaries built the same way are
# kept.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
K8S_VERSION="v1.37.2"
ETCD_VERSION="v3.7.3"
HELM_VERSION="v3.22.0"
cache="${LARK_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/lark-operator}"
out="$cache/controlplane/k8s-${K8S_VERSION}_etcd-${ETCD_VERSION}_helm-${HELM_VERSION}"
mkdir -p "$out"

export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS="-mod=mod -trimpath"
build_date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"

build() { # name module-dir package ldflags
  local name=$1 dir=$2 pkg=$3 ldflags=$4
  # A stamp records how the binary was built: new flags rebuild just that binary.
  local stamp="$pkg $ldflags"
  stamp="${stamp//-X k8s.io\/component-base\/version.buildDate=*/}"
  if [[ -x "$out/$name" && "$(cat "$out/$name.stamp" 2>/dev/null)" == "$stamp" ]]; then
    echo "controlplane: $name cached at $out/$name"
    return
  fi
  echo "controlplane: building $name (first time only; several minutes on 2 cores)..."
  local start=$SECONDS
  (cd "$here/$dir" && go build -ldflags "-s -w $ldflags" -o "$out/$name.tmp" "$pkg")
  mv "$out/$name.tmp" "$out/$name"
  printf '%s' "$stamp" > "$out/$name.stamp"
  echo "controlplane: built $name in $((SECONDS - start))s"
}

minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
k8s_version_flags="-X k8s.io/component-base/version.gitVersion=${K8S_VERSION} -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=${minor} -X k8s.io/component-base/version.gitTreeState=clean -X k8s.io/component-base/version.buildDate=${build_date}"
# The apiserver, then what the end-to-end test's node runs (tests/e2e, docs/e2e.md).
for cmd in kube-apiserver kubelet kube-controller-manager kube-scheduler; do
  build "$cmd" kube-apiserver "k8s.io/kubernetes/cmd/$cmd" "$k8s_version_flags"
done
build etcd etcd . ""
# As helm's own Makefile does: the Kubernetes version `helm template`/`lint` assume
# without a cluster (else 1.20, and a chart's kubeVersion >=1.25 is refused).
k8s_flags=""
for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
  k8s_flags+=" -X ${pkg}.k8sVersionMajor=1 -X ${pkg}.k8sVersionMinor=${minor}"
done
build helm helm helm.sh/helm/v3/cmd/helm \
  "-X helm.sh/helm/v3/internal/version.version=${HELM_VERSION} -X helm.sh/helm/v3/internal/version.gitTreeState=clean${k8s_flags}"

# kstatus (hack/kstatus): how Flux and kpt read a LarkApp's health, for tests/integration/gitops.
cli_utils="$(awk '$1 == "sigs.k8s.io/cli-utils" {print $2}' "$here/../kstatus/go.mod")"
build kstatus ../kstatus . "-X main.version=${cli_utils}"

# kube-score: a well-known checker of Kubernetes manifests, run on the chart by
# tests/integration/chart/test_kube_score.py. Its own module, at a pinned version.
KUBE_SCORE_VERSION="v1.20.0"
if [[ -x "$out/kube-score" && "$(cat "$out/kube-score.stamp" 2>/dev/null)" == "$KUBE_SCORE_VERSION" ]]; then
  echo "controlplane: kube-score cached at $out/kube-score"
else
  echo "controlplane: building kube-score (first time only)..."
  start=$SECONDS
  GOFLAGS=-trimpath GOBIN="$out" go install "github.com/zegl/kube-score/cmd/kube-score@${KUBE_SCORE_VERSION}"
  printf '%s' "$KUBE_SCORE_VERSION" > "$out/kube-score.stamp"
  echo "controlplane: built kube-score in $((SECONDS - start))s"
fi

ln -sfn "$(basename "$out")" "$cache/controlplane/current"
echo "$out"
