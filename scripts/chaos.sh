#!/usr/bin/env bash
# make chaos: the long tier of the fault suite (docs/reliability.md). The same tests as
# `make test` at chaos sizes (CHAOS=1: 20 kills per storm, every crash point, 2,000
# failed calls per fault, 1,000 schemathesis examples per operation on a random seed,
# workloads of four operations under simulated power loss, a minute of slow clients),
# in release builds, one test at a time; then Debian's slowhttptest against both services,
# and storaged against Debian's Ceph radosgw (a second real S3 implementation).
set -euo pipefail
cd "$(dirname "$0")/.."

install() {
    command -v "$1" >/dev/null && return
    echo "installing $2" >&2
    if [ "$(id -u)" = 0 ]; then apt-get install -y -q "$2" >/dev/null; else sudo apt-get install -y -q "$2" >/dev/null; fi
}
install strace strace
install slowhttptest slowhttptest
for daemon in ceph-mon ceph-osd ceph-mgr radosgw; do install "$daemon" "$daemon"; done
make venv

export CHAOS=1
out=target/chaos
mkdir -p "$out"
cargo build --release --locked -p storaged -p catalogd

run() { # name, cargo test arguments...
    local name=$1; shift
    echo "== $name" >&2
    cargo test --release --locked "$@" -- --test-threads=1 --nocapture >"$out/$name.log" 2>&1 \
        || { tail -50 "$out/$name.log"; echo "chaos: $name failed (log: $out/$name.log)" >&2; exit 1; }
}
run faults -p faults
run power-loss -p storaged --lib power_loss

echo "== slowhttptest" >&2
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
sp=$(free_port); cp=$(free_port); data=$(mktemp -d)
./target/release/storaged --listen "127.0.0.1:$sp" --data-dir "$data" >"$out/slow-storaged.log" 2>&1 &
spid=$!
./target/release/catalogd --listen "127.0.0.1:$cp" --storaged-url "http://127.0.0.1:$sp" >"$out/slow-catalogd.log" 2>&1 &
cpid=$!
trap 'kill $spid $cpid 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$cp/readyz" >/dev/null && break
    sleep 0.1
done
python3 faults/scripts/slow_clients.py --storaged "$sp" --catalogd "$cp" --storaged-pid "$spid" \
    --seconds 60 --slowhttptest >"$out/slowhttptest.log"

echo "== radosgw" >&2
.venv/bin/python faults/scripts/radosgw.py --storaged ./target/release/storaged \
    --log "$out/radosgw-storaged.log" >"$out/radosgw.log"

echo "== figures" >&2
grep -h -o -E '(kill -9 .*|crash points explored.*|power loss.*|concurrency checker.*|write protocol:.*|slow store.*|[0-9]+ failed registers.*|[0-9]+ hostile keys.*|schemathesis (storaged|catalogd):.*|slow clients:.*|auth:.*)' "$out"/*.log || true
echo "slowhttptest: $(cat "$out/slowhttptest.log")"
cat "$out/radosgw.log"
echo "chaos: all green"
