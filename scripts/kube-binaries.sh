#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager, kube-scheduler and kubectl v1.20.2 from
# Debian's `kubernetes` source package with Debian's Go, and caches them in
#   ${STRATA_CACHE_DIR:-$HOME/.cache/strata}/kubernetes-v1.20.2/bin/
# The stamp file next to bin/ is written last: when it and the binaries are there, this
# script prints where they are and exits at once. Otherwise it installs the build packages
# with apt, adds a deb-src entry derived from this machine's Debian apt sources, fetches the
# source, swaps in Debian's reflect2 and json-iterator (with the vendored ones, Go 1.19
# builds binaries that segfault when json-iterator encodes a map: the apiserver on its first
# list request, Debian's own kubectl 1.20 in `kubectl config set-credentials`), builds
# (about 500 CPU-seconds and 1.4 GB of memory: 7.5 minutes measured on 2 cores shared with
# other builds, nice'd), checks the binaries, moves them into place and removes the build
# folder. bin/ only ever appears whole (built in a temporary folder, then renamed); a
# rebuild replaces it only when the new set is ready, so tests using it meanwhile keep
# working. A failure leaves no stamp. Logs of each step are kept in kubernetes-v1.20.2/logs/.
set -euo pipefail

readonly KUBE_VERSION=v1.20.2
# Bump when the build recipe changes, so that caches built by an older recipe are rebuilt.
readonly RECIPE=2
readonly BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
readonly BUILD_PACKAGES=(golang-go rsync make dpkg-dev
    golang-github-modern-go-reflect2-dev golang-github-json-iterator-go-dev)
# Vendored Go packages replaced by Debian's copies (under /usr/share/gocode/src).
readonly DEBIAN_GO_PACKAGES=(github.com/modern-go/reflect2 github.com/json-iterator/go)
readonly DEB_SRC_NAME=strata-deb-src

CACHE=${STRATA_CACHE_DIR:-$HOME/.cache/strata}
DEST=$CACHE/kubernetes-$KUBE_VERSION
BIN=$DEST/bin
STAMP=$DEST/stamp
STAMP_LINE="strata kube-binaries $KUBE_VERSION recipe $RECIPE"

log() { printf '[kube-binaries %4ss] %s\n' "$SECONDS" "$*"; }
die() { log "ERROR: $*" >&2; exit 1; }

cached() {
    [ -f "$STAMP" ] && [ "$(head -n 1 "$STAMP")" = "$STAMP_LINE" ] || return 1
    local b
    for b in "${BINARIES[@]}"; do [ -x "$BIN/$b" ] || return 1; done
}

if cached; then
    log "cached: ${BINARIES[*]} $KUBE_VERSION in $BIN"
    exit 0
fi

mkdir -p "$DEST"
DEST=$(cd "$DEST" && pwd -P)
BIN=$DEST/bin
STAMP=$DEST/stamp
LOGS=$DEST/logs
mkdir -p "$LOGS"

# One build at a time per cache; a second caller waits, then finds the cache filled.
exec 9>"$DEST/.lock"
if ! flock -n 9; then
    log "another build is running in $DEST; waiting for it"
    flock 9
fi
if cached; then
    log "cached: ${BINARIES[*]} $KUBE_VERSION in $BIN"
    exit 0
fi

# Leftovers of an interrupted run (we hold the lock, so nobody else is using them). An
# existing bin/ stays until its replacement is ready.
rm -rf "$STAMP" "$DEST"/build.* "$DEST"/bin.tmp.* "$DEST"/bin.old.*

BUILD_DIR=
BIN_TMP=
cleanup() {
    local status=$?
    if [ -n "$BUILD_DIR" ]; then rm -rf "$BUILD_DIR"; fi
    if [ -n "$BIN_TMP" ]; then rm -rf "$BIN_TMP"; fi
    if [ "$status" -ne 0 ]; then
        rm -f "$STAMP" "$STAMP.tmp"
        log "FAILED (exit $status); logs are in $LOGS" >&2
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "not root and no sudo: cannot install packages with apt"
    SUDO=(sudo -n)
fi
APT_OPTS=()
# apt-get source downloads as the unprivileged _apt user; it cannot write in our folder.
if [ "$(id -u)" -eq 0 ]; then APT_OPTS=(-o APT::Sandbox::User=root); fi

# Runs a command with its output in $LOGS/<name>.log; on failure prints the log's end.
run_logged() {
    local name=$1
    shift
    local out=$LOGS/$name.log
    local status=0
    printf '+ %s\n' "$*" >"$out"
    "$@" >>"$out" 2>&1 </dev/null || status=$?
    if [ "$status" -ne 0 ]; then
        log "$name failed (exit $status); the end of $out:" >&2
        tail -n 40 "$out" >&2
        return "$status"
    fi
}

# (No `producer | grep -q`: with pipefail, grep quitting early fails the producer.)
installed() {
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]
}

has_candidate() {
    local policy
    policy=$(apt-cache policy "$1" 2>/dev/null) || return 1
    [[ $policy =~ Candidate:\ [^\(] ]]
}

apt_update() {
    log "apt-get update"
    run_logged apt-update "${SUDO[@]}" apt-get update -q
}

# Installs the packages not installed yet; runs apt-get update first only when needed.
apt_install() {
    local missing=() p
    for p in "$@"; do installed "$p" || missing+=("$p"); done
    [ "${#missing[@]}" -eq 0 ] && { log "build packages already installed"; return 0; }
    for p in "${missing[@]}"; do
        if ! has_candidate "$p"; then apt_update; break; fi
    done
    log "apt-get install ${missing[*]}"
    local cmd=("${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q
        --no-install-recommends "${missing[@]}")
    if ! run_logged apt-install "${cmd[@]}"; then
        log "retrying after apt-get update (the package lists may be stale)"
        apt_update
        run_logged apt-install "${cmd[@]}"
    fi
}

# The "file:stanza" (deb822) or "file:line" (one-line format) apt entries of the given
# type (deb or deb-src) whose archive says "Origin: Debian", other than ours.
debian_entries() {
    apt-get indextargets --format '$(SOURCESENTRY)' "Target-Of: $1" 'Origin: Debian' \
        | { grep -v "/$DEB_SRC_NAME\." || true; } | sort -u
}

# Prints stanza $2 (1-based, comment-only paragraphs not counted) of deb822 file $1,
# without comments and without its Types field, and with Types: deb-src.
deb822_src_stanza() {
    awk -v want="$2" '
        BEGIN { RS = ""; FS = "\n" }
        {
            body = ""; types = 0
            for (i = 1; i <= NF; i++) {
                if ($i ~ /^[ \t]*#/) continue
                if ($i ~ /^[Tt]ypes:/) { types = 1; skip = 1; continue }
                if (skip && $i ~ /^[ \t]/) continue
                skip = 0
                body = body $i "\n"
            }
            if (body == "") next
            n++
            if (n == want) { printf "Types: deb-src\n%s", body; exit }
        }' "$1"
}

# Prints line $2 of one-line-format file $1 with "deb" turned into "deb-src".
list_src_line() {
    sed -n "${2}p" "$1" | sed -E 's/^[[:space:]]*deb([[:space:]])/deb-src\1/'
}

# Writes $2 to file $1 (as root) unless it already holds exactly that.
write_if_changed() {
    if [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; then return 1; fi
    printf '%s\n' "$2" | "${SUDO[@]}" tee "$1" >/dev/null
}

# Makes Debian's source packages available to apt-get source: a deb-src entry copied from
# each Debian deb entry of this machine (deb822 .sources or one-line sources.list).
ensure_deb_src() {
    local entries
    entries=$(debian_entries deb)
    if [ -z "$entries" ]; then
        # The archive's Origin is read from the package lists: fetch them first.
        apt_update
        entries=$(debian_entries deb)
    fi
    [ -n "$entries" ] || die "found no apt entry for Debian's archive (Origin: Debian) to derive a deb-src entry from"

    local dir=/etc/apt/sources.list.d SOURCEPARTS=
    eval "$(apt-config shell SOURCEPARTS Dir::Etc::sourceparts/d)"
    dir=${SOURCEPARTS%/}
    local sources_file=$dir/$DEB_SRC_NAME.sources list_file=$dir/$DEB_SRC_NAME.list
    if [ -n "$(debian_entries deb-src)" ]; then
        log "Debian deb-src entries already configured"
    else
        local sources_text="" list_text="" entry file index
        local header="# Written by Strata's scripts/kube-binaries.sh from the Debian deb entries; deb-src for apt-get source."
        while IFS= read -r entry; do
            file=${entry%:*}
            index=${entry##*:}
            case $file in
            *.sources) sources_text+=${sources_text:+$'\n'}$(deb822_src_stanza "$file" "$index")$'\n' ;;
            *) list_text+=$(list_src_line "$file" "$index")$'\n' ;;
            esac
        done <<<"$entries"
        local changed=0
        if [ -n "$sources_text" ]; then
            write_if_changed "$sources_file" "$header"$'\n'"${sources_text%$'\n'}" && changed=1
        fi
        if [ -n "$list_text" ]; then
            write_if_changed "$list_file" "$header"$'\n'"${list_text%$'\n'}" && changed=1
        fi
        if [ "$changed" -eq 1 ]; then
            log "added deb-src entries: $(echo "$dir"/$DEB_SRC_NAME.*)"
        else
            log "deb-src entries already added: $(echo "$dir"/$DEB_SRC_NAME.*)"
        fi
    fi
    if [ -z "$(source_version)" ]; then
        apt_update
    fi
}

# The newest version of the kubernetes source package that is upstream 1.20.2.
source_version() {
    apt-cache showsrc kubernetes 2>/dev/null | awk '/^Version:/ { print $2 }' \
        | { grep -F "${KUBE_VERSION#v}" || true; } | sort -V | tail -n 1
}

log "building ${BINARIES[*]} $KUBE_VERSION into $BIN (logs in $LOGS)"

log "step 1/6: build packages"
apt_install "${BUILD_PACKAGES[@]}"

log "step 2/6: deb-src entry"
ensure_deb_src
SRC_VERSION=$(source_version)
[ -n "$SRC_VERSION" ] || die "apt knows no kubernetes source package for ${KUBE_VERSION#v} (apt-cache showsrc kubernetes)"

log "step 3/6: apt-get source kubernetes=$SRC_VERSION"
BUILD_DIR=$(mktemp -d "$DEST/build.XXXXXX")
(cd "$BUILD_DIR" && run_logged apt-source apt-get "${APT_OPTS[@]}" source -q --only-source "kubernetes=$SRC_VERSION")
TREE=$(find "$BUILD_DIR" -mindepth 1 -maxdepth 1 -type d -name 'kubernetes-*' -print -quit)
[ -n "$TREE" ] && [ -f "$TREE/debian/rules" ] || die "no unpacked source tree in $BUILD_DIR"
rm -f "$BUILD_DIR"/*.tar.* "$BUILD_DIR"/*.dsc

log "step 4/6: vendoring Debian's ${DEBIAN_GO_PACKAGES[*]}"
for pkg in "${DEBIAN_GO_PACKAGES[@]}"; do
    [ -d "/usr/share/gocode/src/$pkg" ] || die "/usr/share/gocode/src/$pkg is missing"
    [ -d "$TREE/vendor/$pkg" ] || die "the source has no vendor/$pkg to replace"
    rm -rf "${TREE:?}/vendor/$pkg"
    cp -rL "/usr/share/gocode/src/$pkg" "$TREE/vendor/$pkg"
done
log "  reflect2 $(dpkg-query -W -f='${Version}' golang-github-modern-go-reflect2-dev)," \
    "json-iterator $(dpkg-query -W -f='${Version}' golang-github-json-iterator-go-dev)"

# As debian/rules does: a GOPATH inside the tree, Debian's Go first in PATH, no cgo.
# hack/lib/init.sh sets GO111MODULE=off (GOPATH mode, vendor/ used) and the version comes
# from the git-archive substitutions in hack/lib/version.sh (tag: v1.20.2).
mkdir -p "$TREE/.go/src/k8s.io"
[ -L "$TREE/.go/src/k8s.io/kubernetes" ] || ln -s ../../.. "$TREE/.go/src/k8s.io/kubernetes"
WHAT=""
for b in "${BINARIES[@]}"; do WHAT+="cmd/$b "; done
GO_ENV=(env -u GOFLAGS -u GOBIN -u GOROOT -u GOTOOLCHAIN
    "PATH=/usr/lib/go/bin:$PATH" "GOPATH=$TREE/.go" CGO_ENABLED=0 GO111MODULE=off
    "KUBE_GIT_VERSION=$KUBE_VERSION")
log "step 5/6: make WHAT=\"${WHAT% }\" ($(/usr/lib/go/bin/go version), nice 10, $(nproc) CPUs)"
TIMING=()
[ -x /usr/bin/time ] && TIMING=(/usr/bin/time -v -o "$LOGS/make.time")
build_start=$SECONDS
(cd "$TREE" && run_logged make "${GO_ENV[@]}" "${TIMING[@]}" nice -n 10 make WHAT="${WHAT% }")
peak=""
if [ -f "$LOGS/make.time" ]; then
    peak=$(awk -F': ' '/Maximum resident set size/ { printf ", peak RSS of one process %d MiB", $2 / 1024 }' "$LOGS/make.time")
fi
log "  built in $((SECONDS - build_start))s$peak"

log "step 6/6: checking and installing the binaries"
BIN_TMP=$(mktemp -d "$DEST/bin.tmp.XXXXXX")
for b in "${BINARIES[@]}"; do
    [ -x "$TREE/_output/bin/$b" ] || die "the build made no _output/bin/$b"
    cp "$TREE/_output/bin/$b" "$BIN_TMP/$b"
    version_cmd=("$BIN_TMP/$b" --version)
    [ "$b" = kubectl ] && version_cmd=("$BIN_TMP/$b" version --client --short)
    version=$("${version_cmd[@]}" 2>&1) || die "'${version_cmd[*]}' failed: $version"
    case $version in
    *"$KUBE_VERSION") log "  $b: $version" ;;
    *) die "$b reports '$version', not $KUBE_VERSION" ;;
    esac
done
chmod 755 "$BIN_TMP"
if [ -e "$BIN" ]; then
    old=$(mktemp -d "$DEST/bin.old.XXXXXX")
    mv -T "$BIN" "$old"
    mv -T "$BIN_TMP" "$BIN"
    rm -rf "$old"
else
    mv -T "$BIN_TMP" "$BIN"
fi
BIN_TMP=
rm -rf "$BUILD_DIR"
BUILD_DIR=
{
    echo "$STAMP_LINE"
    echo "source: kubernetes $SRC_VERSION (Debian)"
    echo "go: $(/usr/lib/go/bin/go version)"
    echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ) in ${SECONDS}s"
} >"$STAMP.tmp"
mv "$STAMP.tmp" "$STAMP"
log "done: ${BINARIES[*]} $KUBE_VERSION in $BIN"
