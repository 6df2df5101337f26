#!/usr/bin/env bash
# Installs the Helm engine that e2e's `helm` executable (e2e/src/bin/helm.rs) loads: the
# C-ABI library libhelm_sdkpy.so, the real Helm v4 Go engine, which ships inside the
# PyPI wheel helm-sdkpy. Only the library is used, never its Python bindings, so the
# wheel is fetched for Python 3.12 whatever Python this machine has (the wheel is
# py3-none-any; its Requires-Python is the only thing that ties it to 3.12).
#
# Result: ${STRATA_CACHE_DIR:-$HOME/.cache/strata}/helm-sdkpy/libhelm_sdkpy.so, plus a
# stamp file naming the version. Idempotent: a second run with the stamp present and
# matching exits at once.
set -euo pipefail

HELM_SDKPY_VERSION=0.1.32
cache_dir="${STRATA_CACHE_DIR:-$HOME/.cache/strata}/helm-sdkpy"
lib="$cache_dir/libhelm_sdkpy.so"
stamp="$cache_dir/VERSION"

# The functions e2e/src/bin/helm/engine.rs resolves; a wheel that lacks one is unusable.
required_symbols=(
    helm_sdkpy_config_create
    helm_sdkpy_config_destroy
    helm_sdkpy_install
    helm_sdkpy_upgrade
    helm_sdkpy_uninstall
    helm_sdkpy_list
    helm_sdkpy_status
    helm_sdkpy_history
    helm_sdkpy_get_values
    helm_sdkpy_last_error
    helm_sdkpy_free
)

die() {
    echo "helm-engine.sh: $*" >&2
    exit 1
}

verify_exports() {
    local file=$1 exports missing=()
    exports=$(nm -D --defined-only "$file" 2>/dev/null) || die "cannot read the dynamic symbols of $file (is binutils' nm installed?)"
    for sym in "${required_symbols[@]}"; do
        grep -qE "[[:space:]]T[[:space:]]+${sym}\$" <<<"$exports" || missing+=("$sym")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        die "libhelm_sdkpy.so of helm-sdkpy $HELM_SDKPY_VERSION does not export: ${missing[*]}"
    fi
}

if [ -f "$lib" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "helm-sdkpy $HELM_SDKPY_VERSION" ]; then
    exit 0
fi

command -v nm >/dev/null || die "nm is missing (apt-get install -y binutils)"
command -v python3 >/dev/null || die "python3 is missing"
python3 -m pip --version >/dev/null 2>&1 || die "pip is missing for python3"

mkdir -p "$cache_dir"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "helm-engine.sh: fetching helm-sdkpy $HELM_SDKPY_VERSION"
python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --python-version 3.12 "helm-sdkpy==$HELM_SDKPY_VERSION" -d "$work/wheel" ||
    die "pip could not download helm-sdkpy $HELM_SDKPY_VERSION"

wheel=$(find "$work/wheel" -name "helm_sdkpy-$HELM_SDKPY_VERSION-*.whl" | head -n 1)
[ -n "$wheel" ] || die "pip reported success but left no helm_sdkpy wheel in $work/wheel"

case "$(uname -m)" in
    x86_64) platform=linux-amd64 ;;
    aarch64) platform=linux-arm64 ;;
    *) die "no libhelm_sdkpy.so is shipped for $(uname -m)" ;;
esac
member="helm_sdkpy/_lib/$platform/libhelm_sdkpy.so"

# A wheel is a zip; Python's zipfile avoids depending on unzip being installed.
python3 - "$wheel" "$member" "$work/libhelm_sdkpy.so" <<'EOF' || die "cannot extract the library from the wheel"
import shutil, sys, zipfile
wheel, member, dest = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(dest, "wb") as out:
    shutil.copyfileobj(src, out)
EOF

verify_exports "$work/libhelm_sdkpy.so"

# Copy next to the destination first so the final mv is a same-filesystem rename: a
# reader (a test already running) sees either the old library or the new one, whole.
tmp_lib=$(mktemp "$cache_dir/.libhelm_sdkpy.so.XXXXXX")
cp "$work/libhelm_sdkpy.so" "$tmp_lib"
chmod 0755 "$tmp_lib"
mv -f "$tmp_lib" "$lib"

tmp_stamp=$(mktemp "$cache_dir/.VERSION.XXXXXX")
echo "helm-sdkpy $HELM_SDKPY_VERSION" >"$tmp_stamp"
chmod 0644 "$tmp_stamp"
mv -f "$tmp_stamp" "$stamp"

echo "helm-engine.sh: installed $lib (helm-sdkpy $HELM_SDKPY_VERSION)"
