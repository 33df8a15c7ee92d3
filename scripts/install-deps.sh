#!/usr/bin/env bash
# Installs what the tests, the demo and the benchmarks need on a Debian bookworm
# machine (run as root). Idempotent: it installs only what is missing.
set -euo pipefail

RIE_VERSION="${RIE_VERSION:-v0.0.0-20261030222936-bef5c4ba774d}"
export PATH="$PATH:/usr/local/go/bin:/usr/sbin:/sbin"

need=()
command -v mariadbd   >/dev/null 2>&1 || need+=(mariadb-server)
command -v mariadb    >/dev/null 2>&1 || need+=(mariadb-client)
command -v mkfs.xfs   >/dev/null 2>&1 || need+=(xfsprogs)
command -v mkfs.btrfs >/dev/null 2>&1 || need+=(btrfs-progs)
command -v mkfs.ext4  >/dev/null 2>&1 || need+=(e2fsprogs)
command -v losetup    >/dev/null 2>&1 || need+=(mount)
command -v sysbench   >/dev/null 2>&1 || need+=(sysbench)
command -v xfs_freeze >/dev/null 2>&1 || need+=(xfsprogs)

if [ "${#need[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing ${need[*]}; run as root to install them" >&2
    exit 1
  fi
  echo "install-deps: installing ${need[*]}" >&2
  apt-get update -qq
  # The Debian package tries to start the service; policy-rc.d may refuse, which is fine:
  # tests and the demo start their own mariadbd.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# The Lambda Runtime Interface Emulator, built from the Go module proxy.
gobin="$(go env GOPATH)/bin"
if [ ! -x "$gobin/aws-lambda-rie" ]; then
  echo "install-deps: go install aws-lambda-rie@$RIE_VERSION" >&2
  go install "github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie@$RIE_VERSION" \
    || echo "install-deps: warning: aws-lambda-rie could not be installed; RIE tests will fail" >&2
fi
