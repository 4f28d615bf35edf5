#!/usr/bin/env bash
# storaged figures: PUT 4 KiB at concurrency 1 and 16 (fsync on), GET 4 KiB at 64,
# PUT/GET of a 1 GiB object with storaged's peak RSS, and the machine's ceilings
# (durable 4 KiB write loop, sequential 1 GiB write with fsync) measured in the same run.
# Every figure is printed per run (3 runs); files are kept until the end of the run.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "bench needs wrk (apt-get install wrk)" >&2; exit 1; }
cargo build --release -p storaged --locked
work=$(mktemp -d "${BENCH_DIR:-$PWD/target}/storaged-bench.XXXXXX")
port=${BENCH_PORT:-18101}
./target/release/storaged --data-dir "$work/data" --listen "127.0.0.1:$port" > "$work/storaged.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 50); do curl -sf "127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
url="http://127.0.0.1:$port"

echo "== ceiling: durable 4 KiB write (temp, fsync, rename, fsync dir), concurrency 1"
for run in 1 2 3; do python3 bench/durable_write.py "$work/ceiling$run"; done
echo "== ceiling: sequential 1 GiB write + fsync"
head -c 1073741824 /dev/urandom > "$work/1g.bin"
for run in 1 2 3; do dd if="$work/1g.bin" of="$work/dd$run" bs=1M conv=fsync 2>&1 | tail -1; done

for c in 1 16; do
  for run in 1 2 3; do
    printf 'PUT 4 KiB c=%-3s run %s: ' "$c" "$run"
    wrk -t1 -c"$c" -d8s --latency -s bench/put4k.lua "$url" | awk '/Requests\/sec/{r=$2} / 50%/{p50=$2} / 99%/{p99=$2} END{print r " req/s p50 " p50 " p99 " p99}'
  done
done
head -c 4096 /dev/urandom | curl -sf -X PUT --data-binary @- "$url/v1/objects/bench/get4k" >/dev/null
for run in 1 2 3; do
  printf 'GET 4 KiB c=64  run %s: ' "$run"
  wrk -t2 -c64 -d8s --latency "$url/v1/objects/bench/get4k" | awk '/Requests\/sec/{r=$2} / 50%/{p50=$2} / 99%/{p99=$2} END{print r " req/s p50 " p50 " p99 " p99}'
done
hwm() { awk '/VmHWM/{print $2 " kB"}' "/proc/$pid/status"; }
echo "storaged peak RSS before large objects: $(hwm)"
for run in 1 2 3; do
  curl -sf -o /dev/null -w "PUT 1 GiB run $run: %{time_total} s, %{speed_upload} B/s\n" -T "$work/1g.bin" "$url/v1/objects/bench/big$run"
  curl -sf -o /dev/null -w "GET 1 GiB run $run: %{time_total} s, %{speed_download} B/s\n" "$url/v1/objects/bench/big$run"
  echo "storaged peak RSS: $(hwm)"
done
