#!/usr/bin/env bash
# The demo command: installs what it needs (iproute2, ping, ethtool, python3, ...), then runs the
# two-node demo (docs/demo.md). Needs root, as network namespaces do. Arguments go to vpg-demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo run --release -q -p vpg-demo -- "$@"
