#!/usr/bin/env bash
# Strata's main job on its embedded default: the sample packs and profiles in
# manifests/samples, a local management control plane, the simulated cloud and one
# WorkloadCluster taken through the whole order of operations: the pivot, the scale-out and
# the layers (CNI, CSI and two add-ons, installed by the agent with the Helm engine). Each
# step is shown with its progress and timing. Installs what it needs (idempotently, the Kubernetes
# binaries cached in ~/.cache/strata) and can be run again.
#
#   bash scripts/demo.sh           # cloud-like delays; waits for Enter at the end on a terminal
#   bash scripts/demo.sh --fast    # test-speed delays
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

samples=manifests/samples
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
elapsed() { local ms=$(( $(now_ms) - $1 )); printf '%d.%02ds' $((ms / 1000)) $(((ms % 1000) / 10)); }

step() {
    local title=$1; shift
    printf '\n[setup] %s\n' "$title"
    local start; start=$(now_ms)
    "$@"
    printf '    done in %s\n' "$(elapsed "$start")"
}

install() { bash scripts/install-test-deps.sh 2>&1 | tail -n 3 | sed 's/^/    /'; }
build() {
    cargo build --quiet --release -p strata-management -p strata-agent
    cargo build --quiet --release -p strata-e2e --bin strata-demo --bin strata-sim-cloud --bin helm
}
strata=target/release/strata

validate_packs() { "$strata" pack validate "$samples"/packs/* 2>&1 | sed 's/^/    /'; }
validate_profiles() { "$strata" profile validate "$samples"/profiles/*.yaml --packs "$samples/packs" | sed 's/^/    /'; }

step "install the test substrate (etcd, registry, Kubernetes v1.20.2 binaries, cached)" install
step "build strata, strata-agent, the simulated cloud, helm and the demo" build
step "validate the sample packs (manifests/samples/packs)" validate_packs
step "validate the sample profiles against them" validate_profiles

exec target/release/strata-demo "$@"
