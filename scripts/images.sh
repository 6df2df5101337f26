#!/usr/bin/env bash
# Builds the `strata` and `strata-agent` container images without a container daemon, and
# optionally pushes them: release binaries, then `strata-image build` (an OCI image
# layout per image, assembled from the binaries, their shared libraries and a few
# files; no base image), then `strata-image push`. docs/images.md says what is in them.
#
#   scripts/images.sh [--binaries DIR] [--tool PATH] [--helm PATH] [--layout-dir DIR]
#                     [--version V] [--revision SHA] [--source URL]
#                     [--push REGISTRY/PREFIX [--tag TAG] [--ca-file PEM] [--plain-http]
#                      [--username USER]]
#
#   --binaries DIR   take strata and strata-agent from DIR instead of building them
#                    (`cargo build --release --locked`); strata-image too, unless --tool
#   --tool PATH      the strata-image executable to run
#   --helm PATH      the helm executable for the agent's image (default: helm on PATH)
#   --layout-dir DIR where the layouts go (default: <target>/images); replaced each run
#   --version V      default: the workspace version in Cargo.toml
#   --revision SHA   default: the checked-out commit (with -dirty for local changes)
#   --source URL     default: the URL of the git remote `origin`, without credentials
#   --push REGISTRY/PREFIX  push REGISTRY/PREFIX/strata:TAG and .../strata-agent:TAG
#   --tag TAG        default: the version
#   --ca-file PEM    a CA to trust for the registry;  --plain-http: no TLS
#   --username USER  the registry user; the password comes from $STRATA_IMAGE_PASSWORD
#
# Reproducible: the creation time (and every file's time stamp) is $SOURCE_DATE_EPOCH, else
# the commit's time, so the same binaries give the same digests. Idempotent: a rerun
# replaces the layouts and pushes only the blobs the registry lacks.
#
# stdout: strata-image's results (each image's digest and layout; each pushed reference
# with its digest); progress and errors go to stderr.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
target="${CARGO_TARGET_DIR:-$root/target}"

log() { printf '[images] %s\n' "$*" >&2; }
die() {
    printf '[images] ERROR: %s\n' "$*" >&2
    exit 1
}

binaries="" tool="" helm="" layout_dir="$target/images"
version="" revision="" source_url="" push_to="" tag="" ca_file="" plain_http="" username=""
need_value() { [ $# -ge 2 ] && [ -n "$2" ] || die "$1 needs a value"; }
while [ $# -gt 0 ]; do
    case "$1" in
    --binaries) need_value "$@"; binaries=$2; shift 2 ;;
    --tool) need_value "$@"; tool=$2; shift 2 ;;
    --helm) need_value "$@"; helm=$2; shift 2 ;;
    --layout-dir) need_value "$@"; layout_dir=$2; shift 2 ;;
    --version) need_value "$@"; version=$2; shift 2 ;;
    --revision) need_value "$@"; revision=$2; shift 2 ;;
    --source) need_value "$@"; source_url=$2; shift 2 ;;
    --push) need_value "$@"; push_to=$2; shift 2 ;;
    --tag) need_value "$@"; tag=$2; shift 2 ;;
    --ca-file) need_value "$@"; ca_file=$2; shift 2 ;;
    --plain-http) plain_http=1; shift ;;
    --username) need_value "$@"; username=$2; shift 2 ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *) die "unknown argument $1 (see --help)" ;;
    esac
done
if [ -z "$push_to" ] && { [ -n "$tag" ] || [ -n "$ca_file" ] || [ -n "$plain_http" ] || [ -n "$username" ]; }; then
    die "--tag, --ca-file, --plain-http and --username are for pushing: add --push REGISTRY/PREFIX"
fi

if [ -z "$helm" ]; then
    helm=$(command -v helm) || die "no helm on PATH for the agent's image: pass --helm PATH"
fi
[ -e "$helm" ] || die "--helm $helm: no such file"

if [ -z "$version" ]; then
    # The [workspace.package] version, which every crate (and `strata --version`) uses.
    version=$(sed -n '/^\[workspace\.package\]/,/^\[/s/^version = "\(.*\)"$/\1/p' "$root/Cargo.toml")
    [ -n "$version" ] || die "cannot read the workspace version from $root/Cargo.toml: pass --version"
fi

in_git=""
git -C "$root" rev-parse --git-dir >/dev/null 2>&1 && in_git=1
if [ -z "$revision" ] && [ -n "$in_git" ]; then
    revision=$(git -C "$root" rev-parse HEAD)
    git -C "$root" diff --quiet HEAD -- 2>/dev/null || revision="$revision-dirty"
fi
if [ -z "$source_url" ]; then
    if [ -n "$in_git" ] && source_url=$(git -C "$root" remote get-url origin 2>/dev/null); then
        # A remote URL may carry credentials (https://user:token@host/...).
        source_url=$(printf '%s' "$source_url" | sed -E 's#^([a-z+]+://)[^/@]*@#\1#')
    else
        source_url=unknown
        log "no git remote 'origin': the source label says 'unknown' (pass --source URL)"
    fi
fi
if [ -z "${SOURCE_DATE_EPOCH:-}" ] && [ -n "$in_git" ]; then
    SOURCE_DATE_EPOCH=$(git -C "$root" log -1 --format=%ct)
    export SOURCE_DATE_EPOCH
fi

if [ -z "$binaries" ]; then
    log "building the release binaries (strata, strata-agent, strata-image)"
    (cd "$root" && cargo build --release --locked \
        -p strata-management -p strata-agent -p strata-release \
        --bin strata --bin strata-agent --bin strata-image)
    binaries="$target/release"
fi
[ -d "$binaries" ] || die "--binaries $binaries: no such folder"
[ -n "$tool" ] || tool="$binaries/strata-image"
[ -x "$tool" ] || die "$tool: no strata-image executable there (build it with cargo build -p strata-release, or pass --tool PATH)"

build_args=(build --binaries "$binaries" --helm "$helm" --version "$version"
    --source "$source_url" --layout-dir "$layout_dir")
[ -z "$revision" ] || build_args+=(--revision "$revision")
mkdir -p "$layout_dir"
log "building the images into $layout_dir"
"$tool" "${build_args[@]}"

if [ -n "$push_to" ]; then
    push_args=(push --layout-dir "$layout_dir" --to "$push_to" --tag "${tag:-$version}")
    [ -z "$ca_file" ] || push_args+=(--ca-file "$ca_file")
    [ -z "$plain_http" ] || push_args+=(--plain-http)
    [ -z "$username" ] || push_args+=(--username "$username")
    log "pushing to $push_to"
    "$tool" "${push_args[@]}"
fi
