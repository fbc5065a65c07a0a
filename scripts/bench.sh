#!/usr/bin/env bash
# Runs vpg's benchmark scenarios (all, or those named) after installing what their baselines
# need: Debian's dpdk-dev for dpdk-test-acl (the acl-classify-* baseline) and the tools of
# scripts/setup.sh (afpacket-forward). Needs root for the namespace scenario.
#   bash scripts/bench.sh                      # every scenario
#   bash scripts/bench.sh --json acl-classify-acl1_10k
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if ! command -v dpdk-test-acl >/dev/null 2>&1; then
  echo "bench: installing dpdk-dev (dpdk-test-acl)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends dpdk-dev >/dev/null
fi
exec cargo run --release -p vpg-bench -- "$@"
