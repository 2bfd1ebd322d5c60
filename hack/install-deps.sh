#!/usr/bin/env bash
# Installs the Debian packages the lab and the tests run (FRR, BIRD 2,
# nftables, arping, ndisc6, and for real kubelet nodes containerd, runc and
# the CNI plugins, ...) when one is missing. Needs root; a machine
# that already has them is left alone.
set -euo pipefail

# command -> Debian package
declare -A want=(
  [/usr/lib/frr/bgpd]=frr [bird]=bird2 [nft]=nftables [arping]=arping
  [ndisc6]=ndisc6 [tcpdump]=tcpdump [socat]=socat [conntrack]=conntrack
  [ip]=iproute2 [ping]=iputils-ping [ethtool]=ethtool
  [containerd]=containerd [runc]=runc [/usr/lib/cni/bridge]=containernetworking-plugins
  [nsenter]=util-linux
)
missing=()
for cmd in "${!want[@]}"; do
  if [[ $cmd == /* ]]; then [[ -x $cmd ]] && continue; else command -v "$cmd" >/dev/null && continue; fi
  missing+=("${want[$cmd]}")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "missing packages: ${missing[*]}; installing them needs root (run make as root)" >&2
  exit 1
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# FRR, BIRD and containerd are started by the lab per namespace, never as
# system services.
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d.herald && chmod +x /usr/sbin/policy-rc.d.herald
if [[ ! -e /usr/sbin/policy-rc.d ]]; then cp /usr/sbin/policy-rc.d.herald /usr/sbin/policy-rc.d; remove_policy=1; fi
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
[[ ${remove_policy:-0} == 1 ]] && rm -f /usr/sbin/policy-rc.d
rm -f /usr/sbin/policy-rc.d.herald
