#!/usr/bin/env bash
# Installs Herald on the kind cluster of herald.clab.yml the way a user
# would: builds the images without Docker (make images), loads the archives
# into the kind nodes and installs the Helm chart.
#
#   ./install-herald.sh            (KIND_CLUSTER=herald by default)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cluster="${KIND_CLUSTER:-herald}"

make -C "$root" images
for image in herald-controller herald-speaker; do
  kind load image-archive "$root/dist/images/$image.tar" --name "$cluster"
done
helm upgrade --install herald "$root/charts/herald" \
  --namespace herald-system --create-namespace --wait --timeout 5m
kubectl -n herald-system get deployment,daemonset
