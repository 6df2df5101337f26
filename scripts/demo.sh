#!/usr/bin/env bash
# Strata's main job on its embedded default: the sample packs, profiles and cluster in
# manifests/samples. Each step is shown with its timing.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

samples=manifests/samples
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
elapsed() { local ms=$(( $(now_ms) - $1 )); printf '%d.%02ds' $((ms / 1000)) $(((ms % 1000) / 10)); }
total_start=$(now_ms)

step() {
    local n=$1 title=$2; shift 2
    printf '\n[%s] %s\n' "$n" "$title"
    local start; start=$(now_ms)
    "$@"
    printf '    done in %s\n' "$(elapsed "$start")"
}

build() { cargo build --quiet --release -p strata-management; }
strata=target/release/strata

validate_packs() { "$strata" pack validate "$samples"/packs/* 2>&1 | sed 's/^/    /'; }
archive_packs() {
    for pack in "$samples"/packs/*; do
        # Warnings were shown by the validation step.
        "$strata" pack archive "$pack" -o "$work/$(basename "$pack").tar.gz" 2>/dev/null | sed 's/^/    /'
    done
}
validate_profiles() { "$strata" profile validate "$samples"/profiles/*.yaml --packs "$samples/packs" | sed 's/^/    /'; }
render_cluster() {
    "$strata" profile render \
        --profile "$samples/profiles/aws-infra.yaml" --profile "$samples/profiles/ml-addons.yaml" \
        --cluster "$samples/clusters/aws-ml.yaml" --packs "$samples/packs" >"$work/stack.yaml"
    grep -E '^- order:|^  (name|version|layer|digest):' "$work/stack.yaml" | paste - - - - - | \
        awk '{printf "    %2s. %-22s %-10s %-6s %s\n", $3, $5, $7, $9, substr($11, 1, 19)"…"}'
}

step 0/4 "build strata" build
step 1/4 "validate the sample packs (manifests/samples/packs)" validate_packs
step 2/4 "archive every pack deterministically (its digest is its identity)" archive_packs
step 3/4 "validate the cluster profiles against the packs" validate_profiles
step 4/4 "compose cluster aws-ml: profiles aws-infra + ml-addons, install order and merged values" render_cluster

printf '\nThe full stack with merged values: %s profile render --profile %s/profiles/aws-infra.yaml --profile %s/profiles/ml-addons.yaml --cluster %s/clusters/aws-ml.yaml --packs %s/packs\n' \
    "$strata" "$samples" "$samples" "$samples" "$samples"
printf 'Not built yet: provisioning through Cluster API, the agent, the pivot and the scale-out (steps 2-6 of the order of operations in README.md).\n'
printf 'Total %s\n' "$(elapsed "$total_start")"
