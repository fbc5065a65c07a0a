#!/usr/bin/env bash
# The test command: installs what the tests need (network tools for the namespace tests), then
# runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo test --workspace "$@"
