#!/usr/bin/env bash
# catalogd figures: registers/s at concurrency 1 and 64 (distinct names, 10 objects, fsync
# on) with p50/p99, and rehydration time of 10,000 datasets (start → /readyz 200).
# Each figure is printed per run; RUNS (default 3) runs each.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
cargo build --release --locked -q -p storaged -p catalogd --bins --example register_load
work=$(mktemp -d "${BENCH_DIR:-$PWD/target}/catalogd-bench.XXXXXX")
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
./target/release/storaged --listen 127.0.0.1:18101 --data-dir "$work/storaged" >"$work/storaged.log" 2>&1 &
pids+=($!)
start_catalogd() {
    ./target/release/catalogd --listen 127.0.0.1:18102 --storaged-url http://127.0.0.1:18101 >>"$work/catalogd.log" 2>&1 &
    catalogd_pid=$!
    pids+=($catalogd_pid)
}
wait_ready() {
    for _ in $(seq 1 6000); do
        curl -fsS "$1/readyz" >/dev/null 2>&1 && return 0
        sleep 0.005
    done
    echo "not ready: $1" >&2; exit 1
}
wait_ready http://127.0.0.1:18101
start_catalogd
wait_ready http://127.0.0.1:18102
load=./target/release/examples/register_load
# Rehydration of exactly 10,000 datasets first, then the register runs add more.
$load --url http://127.0.0.1:18102 --concurrency 64 --requests 10000 --prefix fill >/dev/null
for run in $(seq 1 "$RUNS"); do
    kill "$catalogd_pid"; wait "$catalogd_pid" 2>/dev/null || true
    t0=$(date +%s.%N)
    start_catalogd
    wait_ready http://127.0.0.1:18102
    t1=$(date +%s.%N)
    n=$(curl -fsS http://127.0.0.1:18102/readyz | python3 -c 'import json,sys; print(json.load(sys.stdin)["datasets"])')
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$catalogd_pid/status")
    echo "{\"rehydration_datasets\": $n, \"start_to_ready_s\": $(echo "$t1 - $t0" | bc), \"rss_kib\": $rss}"
done
for run in $(seq 1 "$RUNS"); do
    $load --url http://127.0.0.1:18102 --concurrency 1 --requests 2000 --prefix "c1r$run"
    $load --url http://127.0.0.1:18102 --concurrency 64 --requests 8000 --prefix "c64r$run"
done
