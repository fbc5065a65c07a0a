#!/usr/bin/env bash
# Times vpg-cni as a runtime would run it: N sequential ADDs into fresh pod namespaces (host ends
# in a separate "vpgd" namespace), then N DELs; prints median, p90 and max per operation.
# Needs root. Usage: scripts/cni-bench.sh [N]   (default 50)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-50}
cargo build --release -q -p vpg-cni
B=$PWD/target/release/vpg-cni
P=cb$$
D=$(mktemp -d)
cleanup() {
  for i in $(seq "$N"); do ip netns del "${P}p$i" 2>/dev/null || true; done
  ip netns del "${P}h" 2>/dev/null || true
  rm -rf "$D"
}
trap cleanup EXIT
ip netns add "${P}h"
for i in $(seq "$N"); do ip netns add "${P}p$i"; done
CONF='{"cniVersion":"1.0.0","name":"vpg","type":"vpg-cni","podCIDR":"10.1.0.0/16","dataDir":"'$D'","hostNetns":"'${P}h'"}'
op() { # COMMAND INDEX -> microseconds
  local t0 t1
  t0=$(date +%s%N)
  echo "$CONF" | CNI_COMMAND=$1 CNI_CONTAINERID=c$2 CNI_NETNS=/var/run/netns/${P}p$2 CNI_IFNAME=eth0 "$B" >/dev/null
  t1=$(date +%s%N)
  echo $(((t1 - t0) / 1000))
}
stats() {
  sort -n | awk '{a[NR]=$1} END {printf "median %.1f ms, p90 %.1f ms, max %.1f ms\n", a[int((NR+1)/2)]/1000, a[int(NR*0.9)]/1000, a[NR]/1000}'
}
echo "ADD ($N pods): $(for i in $(seq "$N"); do op ADD "$i"; done | stats)"
echo "DEL ($N pods): $(for i in $(seq "$N"); do op DEL "$i"; done | stats)"
