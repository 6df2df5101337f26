#!/usr/bin/env bash
# Runs every benchmark of Strata (e2e/benches/) on release builds and writes the table at
# the top of docs/benchmarks.md: each figure, the floor or peer it is measured against in
# the same run, their ratio, the goal, the machine, and the date and commit of the run.
# Each benchmark's whole output is kept in target/bench/<name>.log; the table is made of
# the latest good log of every benchmark, so running some of them updates their rows.
#
#   bash scripts/bench.sh                      # every benchmark (about 40 minutes)
#   bash scripts/bench.sh controller_throughput move_throughput   # only these
#   bash scripts/bench.sh --table              # only the table, from the logs there are
#
# Sizes follow the goals of issue 19 unless set: STRATA_BENCH_CLUSTERS (1000),
# STRATA_BENCH_MACHINES (10,100,500,5000), STRATA_BENCH_RUNS (3). Installs what the
# benchmarks need first (idempotently), as scripts/test.sh does.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
export STRATA_BENCH_CLUSTERS=${STRATA_BENCH_CLUSTERS:-1000}
export STRATA_BENCH_MACHINES=${STRATA_BENCH_MACHINES:-10,100,500,5000}
export STRATA_BENCH_RUNS=${STRATA_BENCH_RUNS:-3}

all=(controller_throughput move_throughput registry_push_pull layer_install fleet_plan)
table_only=false
if [ "${1:-}" = "--table" ]; then table_only=true; shift; fi
if [ "$#" -gt 0 ]; then benches=("$@"); else benches=("${all[@]}"); fi
if $table_only; then benches=(); fi
for bench in "${benches[@]+"${benches[@]}"}"; do
    [ -f "e2e/benches/$bench.rs" ] || { echo "no benchmark e2e/benches/$bench.rs (there are: ${all[*]})" >&2; exit 2; }
done

step() { printf '\n==> [%ss] %s\n' "$SECONDS" "$*"; }

if [ "${#benches[@]}" -gt 0 ]; then
    step "installing what the benchmarks need"
    bash scripts/install-test-deps.sh
    step "building the release binaries the benchmarks run"
    cargo build --release --locked -p strata-agent -p strata-management -p strata-e2e --bins
fi

logs=target/bench
mkdir -p "$logs"
commit=$(git rev-parse --short HEAD 2>/dev/null || echo "unknown")
dirty=$(git status --porcelain 2>/dev/null | grep -q . && echo "+changes" || true)
failed=()
for bench in "${benches[@]+"${benches[@]}"}"; do
    step "benchmark $bench"
    # Each log starts with when and on what it ran: the table takes the latest log of
    # every benchmark, so a run of some of them updates their rows and keeps the others'.
    {
        echo "bench-run	$(date -u +%Y-%m-%d)	${commit}${dirty}"
        cargo bench --locked -p strata-e2e --bench "$bench" 2>&1
    } | tee "$logs/$bench.log.new"
    if [ "${PIPESTATUS[0]}" -eq 0 ] && grep -qP '^bench-row\t' "$logs/$bench.log.new"; then
        mv "$logs/$bench.log.new" "$logs/$bench.log"
    else
        # A failed run leaves the last good log (and its rows) in place.
        mv "$logs/$bench.log.new" "$logs/$bench.failed.log"
        failed+=("$bench")
    fi
done

# The machine, as the table's caption says it.
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
cores=$(nproc)
memory=$(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)

table=$(mktemp)
{
    echo "<!-- bench-table:start (written by scripts/bench.sh; edit the benchmarks, not this table) -->"
    echo "$cores cores ($cpu), $memory. Each row's run: its date and commit (\`+changes\`: with uncommitted changes)."
    echo
    echo "| what | Strata | against | its figure | ratio | goal | run |"
    echo "|---|---|---|---|---|---|---|"
    for bench in "${all[@]}"; do
        [ -f "$logs/$bench.log" ] || continue
        awk -F'\t' '
            /^bench-run\t/ { run = $2 " `" $3 "`"; next }
            /^bench-row\t/ { printf "| %s | %s | %s | %s | %s | %s | %s |\n", $2, $3, $4, $5, $6, $7, run }
        ' "$logs/$bench.log"
    done
    echo "<!-- bench-table:end -->"
} >"$table"

doc=docs/benchmarks.md
if grep -q '^<!-- bench-table:start' "$doc"; then
    # Replace the table between the markers, keep everything else.
    awk -v table="$table" '
        /^<!-- bench-table:start/ { while ((getline line < table) > 0) print line; skipping = 1; next }
        /^<!-- bench-table:end/ { skipping = 0; next }
        !skipping { print }
    ' "$doc" >"$doc.new"
    mv "$doc.new" "$doc"
else
    echo "$doc has no <!-- bench-table:start --> marker; the table is in $logs/table.md" >&2
fi
cp "$table" "$logs/table.md"
rm -f "$table"
cat "$logs/table.md"

if [ "${#failed[@]}" -gt 0 ]; then
    echo "benchmarks that failed: ${failed[*]} (see $logs/<name>.log)" >&2
    exit 1
fi
