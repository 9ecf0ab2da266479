#!/usr/bin/env bash
# Installs (from Debian's packages) the toolchains and real programs the test suite builds
# and runs, skipping whatever is already there: musl-gcc for the guests, g++, Go and Rust
# for the real-program tests, busybox and Debian's redis and
# nats-server as real software.
set -euo pipefail
need=()
command -v musl-gcc >/dev/null || need+=(musl-tools)
command -v g++ >/dev/null || need+=(g++)
command -v go >/dev/null || need+=(golang-go)
command -v rustc >/dev/null || need+=(rustc)
command -v busybox >/dev/null || need+=(busybox-static)
command -v redis-server >/dev/null || need+=(redis-server)
command -v redis-cli >/dev/null || need+=(redis-tools)
[ -x /usr/sbin/nats-server ] || command -v nats-server >/dev/null || need+=(nats-server)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
