#!/usr/bin/env bash
# Runs every check and test of Strata. Installs what it needs first (idempotently) and
# ends with one line: "N passed, N failed". Exit status is non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
# A build from scratch (CI's clean clone) is quicker without incremental compilation's
# records, which only pay off when the same crates are built again and again.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}

step() { printf '\n==> [%ss] %s\n' "$SECONDS" "$*"; }

step "installing what the tests need"
if ! cargo nextest --version >/dev/null 2>&1; then
    cargo install --locked cargo-nextest || { echo "cannot install cargo-nextest"; exit 1; }
fi
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
# etcd, the registry, Kubernetes v1.20.2 built from Debian's source (cached outside the
# repository), and the Helm engine; the end-to-end tests run against them.
bash scripts/install-test-deps.sh || { echo "cannot install the test dependencies"; exit 1; }

passed=0
failed=0
check() {
    local name=$1; shift
    step "$name"
    if "$@"; then
        passed=$((passed + 1))
    else
        echo "FAILED: $name"
        failed=$((failed + 1))
    fi
}

check "formatting (cargo fmt --check)" cargo fmt --all --check
check "lints (cargo clippy --all-targets -D warnings)" cargo clippy --workspace --all-targets --locked -- -D warnings

# The end-to-end tests run the other crates' binaries (strata-agent under the process
# kubelet); nextest builds only the binaries of the packages whose tests it runs.
# The agent's default build has no fault hook (its unit test reads no variable); run first,
# since building it replaces target/debug/strata-agent.
check "the default agent build has no fault hook" \
    cargo nextest run -p strata-agent --locked -E 'test(a_default_build_reads_no_variable_and_has_no_hook)'
# The agent with its test fault hooks (agent/src/pivot/fault_hooks.rs), which the pivot
# tests switch on; a release build leaves them out. The test run below keeps the feature:
# the agent's own tests rebuild its binary, and without it would replace the hooked one.
check "build every binary" cargo build --workspace --bins --locked --features strata-agent/fault-hooks

step "tests (cargo nextest)"
log=$(mktemp)
cargo nextest run --workspace --locked --features strata-agent/fault-hooks --no-fail-fast 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
summary=$(grep -E '^ *Summary \[' "$log" | tail -n 1)
rm -f "$log"
tests_passed=$(sed -nE 's/.* ([0-9]+) passed.*/\1/p' <<<"$summary")
tests_failed=$(sed -nE 's/.* ([0-9]+) failed.*/\1/p' <<<"$summary")
if [ -z "$tests_passed" ]; then
    # No summary: the build failed before any test ran.
    echo "FAILED: the tests did not run"
    failed=$((failed + 1))
else
    passed=$((passed + tests_passed))
    failed=$((failed + ${tests_failed:-0}))
    if [ "$status" -ne 0 ] && [ "${tests_failed:-0}" -eq 0 ]; then
        echo "FAILED: nextest exited with $status"
        failed=$((failed + 1))
    fi
fi

echo
echo "took ${SECONDS}s"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
