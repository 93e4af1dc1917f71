#!/usr/bin/env bash
# Runs the criterion benches and loadgen, and appends their figures to results/*.jsonl.
#
#   benches/record.sh                 # all benches, then loadgen pass4/rider on 1 and 2 threads,
#                                     # then the sharded engine (results/executor.jsonl)
#   benches/record.sh execute/rider   # only benches matching a criterion filter (no loadgen)
#   LOADGEN_SECS=30 benches/record.sh # longer loadgen runs (default 10 s each)
#   NO_LOADGEN=1 benches/record.sh    # criterion only
#   OPEN_LOOP=1 benches/record.sh     # only the open-loop checks: wake-jitter, stall-probe (results/machine.jsonl),
#                                     # check-rate (rider, mixed), check-cap, sweep
#                                     # (results/loadgen.jsonl, results/sweep.*)
#   STORE_COMMIT=1 benches/record.sh  # only the durable store's group commit at 1..1024
#                                     # executions (results/store-commit.jsonl; STORE_SECS=5)
#
# Each JSON line carries the date, commit, machine (cores, CPU model), the 1-minute load
# average and the exact command, so figures from different runs can be compared honestly.
# The machine this project runs on is shared: check loadavg_1m before trusting a change.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p results

# The open-loop checks of issue 4: the 100k/s rate check for rider and mixed, the 5-minute
# cap check on virtual time, and the capacity sweep with its chart.
open_loop() {
    cargo build -q --release -p loadgen -p sfn-benches --bin loadgen --bin wake-jitter --bin stall-probe
    # The machine's noise floor first: how late a thread wakes from a short sleep, and how
    # long busy threads are stopped (the hypervisor's steal).
    JSON=1 target/release/wake-jitter 10 >> results/machine.jsonl
    JSON=1 target/release/stall-probe 5 >> results/machine.jsonl
    for scenario in rider mixed; do
        target/release/loadgen check-rate --scenario "$scenario" --progress quiet --json >> results/loadgen.jsonl || true
    done
    target/release/loadgen check-cap --json >> results/loadgen.jsonl || true
    target/release/loadgen sweep --duration "${SWEEP_SECS:-2}" --warmup 0.5 --progress quiet --json \
        --chart results/sweep >> results/sweep.jsonl
    echo "appended open-loop figures to results/loadgen.jsonl and results/sweep.jsonl; chart in results/sweep.{svg,png}"
}
if [[ -n "${OPEN_LOOP:-}" ]]; then
    open_loop
    exit 0
fi

# Durable state transitions per second through RedbStore::submit (group commit), at
# several numbers of executions in flight; see results/store-commit.md. Disk-bound: the
# fsync latency of a shared disk moves these figures more than the code does.
if [[ -n "${STORE_COMMIT:-}" ]]; then
    cargo build -q --release -p sfn-benches --bin store-commit
    for n in 1 16 64 256 1024; do
        target/release/store-commit --seconds "${STORE_SECS:-5}" --executions "$n" --json >> results/store-commit.jsonl
    done
    echo "appended store-commit figures to results/store-commit.jsonl"
    exit 0
fi

start=$(date +%s)
filter=("$@")
cargo bench -p sfn-benches -- "${filter[@]}"
cargo run -q --release -p sfn-benches --bin criterion-jsonl -- \
    --since "$start" --command "cargo bench -p sfn-benches -- ${filter[*]}" >> results/criterion.jsonl
echo "appended criterion figures to results/criterion.jsonl"

if [[ ${#filter[@]} -eq 0 && -z "${NO_LOADGEN:-}" ]]; then
    cargo build -q --release -p loadgen
    secs=${LOADGEN_SECS:-10}
    for scenario in pass4 rider; do
        for threads in 1 2; do
            target/release/loadgen run --scenario "$scenario" --threads "$threads" --duration "$secs" --json \
                >> results/loadgen.jsonl
        done
    done
    echo "appended loadgen figures to results/loadgen.jsonl"

    # The sharded engine: throughput per workload on 1 and 2 shards (starts from this
    # thread through Engine::start), and bytes per parked rider-photo execution.
    cargo build -q --release -p sfn-benches --bins
    for w in pass4 rider choice-loop map100; do
        n=2000000
        [[ $w == choice-loop || $w == map100 ]] && n=100000
        for shards in 1 2; do
            JSON=1 target/release/engine-throughput "$w" "$shards" "$n" >> results/executor.jsonl
        done
    done
    target/release/parked-memory async-task 100000 >> results/executor.jsonl
    target/release/parked-memory wait 1000000 >> results/executor.jsonl
    echo "appended executor figures to results/executor.jsonl"
    open_loop
fi
