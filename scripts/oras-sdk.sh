#!/usr/bin/env bash
# Installs the ORAS Python SDK (PyPI package `oras`) into a virtual environment of its
# own, for the interoperability tests and the registry benchmark
# (e2e/tests/fixtures/oras_interop.py drives it), and prints the environment's python.
#
# Result: ${STRATA_CACHE_DIR:-$HOME/.cache/strata}/oras-venv, with a stamp file naming the
# version. Idempotent: a second run with the stamp present and matching prints the path
# and exits without touching the network.
#
# Only the python path goes to stdout (so `py=$(scripts/oras-sdk.sh)` works); progress
# goes to stderr.
set -euo pipefail

ORAS_PY_VERSION=0.2.43
venv="${STRATA_CACHE_DIR:-$HOME/.cache/strata}/oras-venv"
python="$venv/bin/python"
stamp="$venv/STRATA-ORAS-VERSION"

log() { printf '[oras-sdk] %s\n' "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}

if [ -x "$python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "oras $ORAS_PY_VERSION" ] &&
    "$python" -c 'import oras.provider' >/dev/null 2>&1; then
    printf '%s\n' "$python"
    exit 0
fi

command -v python3 >/dev/null || die "python3 is missing"
python3 -c 'import sys; sys.exit(sys.version_info < (3, 8))' ||
    die "python3 is older than 3.8: $(python3 --version 2>&1)"

if [ ! -x "$python" ]; then
    log "creating the virtual environment $venv"
    mkdir -p "$(dirname "$venv")"
    # A half-made environment from an interrupted run would fail the check above forever.
    rm -rf "$venv"
    python3 -m venv "$venv" ||
        die "python3 -m venv failed (on Debian/Ubuntu: apt-get install -y python3-venv)"
fi

log "installing oras $ORAS_PY_VERSION with pip"
out=$("$python" -m pip install --quiet --disable-pip-version-check "oras==$ORAS_PY_VERSION" 2>&1) || {
    printf '%s\n' "$out" | tail -n 30 >&2
    die "pip install oras==$ORAS_PY_VERSION failed"
}
"$python" -c 'import oras.provider, oras.client' ||
    die "oras $ORAS_PY_VERSION installed but cannot be imported"
printf 'oras %s\n' "$ORAS_PY_VERSION" >"$stamp"
printf '%s\n' "$python"
