#!/usr/bin/env bash
# Installs what vpg's tests and demos need beyond the Rust toolchain: iproute2 (network
# namespaces and veth pairs), ping, iperf3 and netcat for real traffic, ethtool (host veths'
# segmentation offload off), python3 (the namespace tests' TCP and UDP peers), etcd (the reflector's store tests run a real etcd on loopback) and
# protoc with the well-known protos (the etcd-client crate compiles etcd's gRPC API). Idempotent and quick when
# everything is present. Needs root (as the tests do).
set -euo pipefail
need=()
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v ping >/dev/null 2>&1 || need+=(iputils-ping)
command -v iperf3 >/dev/null 2>&1 || need+=(iperf3)
command -v nc >/dev/null 2>&1 || need+=(netcat-openbsd)
command -v ethtool >/dev/null 2>&1 || need+=(ethtool)
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
command -v protoc >/dev/null 2>&1 || need+=(protobuf-compiler)
[ -f /usr/include/google/protobuf/descriptor.proto ] || need+=(libprotobuf-dev)
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
echo "setup: ok"
