#!/usr/bin/env bash
# Installs the servers and tools the test suite runs for real, when they are missing.
# Debian packages only: influxdb (influxd 1.x) and postgresql (initdb, postgres, psql).
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        echo "install-deps: not root and no sudo; install the missing packages by hand" >&2
    fi
fi

missing=()
command -v influxd >/dev/null 2>&1 || missing+=(influxdb)
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || ! command -v psql >/dev/null 2>&1; then
    missing+=(postgresql)
fi

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
