#!/usr/bin/env bash
# `make compose-test`: the compose stack end to end, offline. Builds the base image if it is
# missing, release binaries and the three images; starts the stack on free ports; runs the
# smoke harness in URL mode with a catalogd restart through compose; an S3 round trip; the
# `s3` profile (storaged on an S3 store, two catalogd replicas); checks through
# Prometheus' HTTP API that both targets are up; always tears the stack down (volumes too).
set -euo pipefail
cd "$(dirname "$0")/.."

if docker compose version >/dev/null 2>&1; then
    compose=(docker compose)
else
    compose=(docker-compose)
fi
project="lake-compose-test-$$"
export LAKE_DOCKERFILE=docker/Dockerfile.prebuilt
export LAKE_BASE_IMAGE=${LAKE_BASE_IMAGE:-lake/base:bookworm}
export LAKE_TAG=compose-test
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
STORAGED_PORT=$(free_port)
STORAGED_S3_PORT=$(free_port)
CATALOGD_PORT=$(free_port)
PROMETHEUS_PORT=$(free_port)
S3_STORAGED_PORT=$(free_port)
CATALOGD_A_PORT=$(free_port)
CATALOGD_B_PORT=$(free_port)
export STORAGED_PORT STORAGED_S3_PORT CATALOGD_PORT PROMETHEUS_PORT S3_STORAGED_PORT CATALOGD_A_PORT CATALOGD_B_PORT
dc() { "${compose[@]}" -p "$project" --profile s3 "$@"; }

docker/build-base.sh
cargo build --release --locked -p storaged -p catalogd -p smoke
dc build

teardown() {
    status=$?
    if [ "$status" -ne 0 ]; then
        echo "compose-test failed; the last service logs:" >&2
        dc logs --no-color --tail=40 >&2 || true
    fi
    dc down -v --remove-orphans >/dev/null 2>&1 || true
    exit "$status"
}
trap teardown EXIT
trap 'exit 130' INT TERM
"${compose[@]}" -p "$project" up -d

./target/release/smoke \
    --storaged-url "http://127.0.0.1:$STORAGED_PORT" \
    --catalogd-url "http://127.0.0.1:$CATALOGD_PORT" \
    --restart-cmd "${compose[*]} -p $project restart catalogd" \
    --ready-timeout-secs 120

# The S3 face (open mode: no credentials in the stack): a bucket, an object written over S3
# and read back over both faces.
s3="http://127.0.0.1:$STORAGED_S3_PORT"
curl -fsS -X PUT "$s3/compose-s3" -o /dev/null
echo "written over s3" | curl -fsS -X PUT --data-binary @- "$s3/compose-s3/check.txt" -o /dev/null
[ "$(curl -fsS "$s3/compose-s3/check.txt")" = "written over s3" ]
[ "$(curl -fsS "http://127.0.0.1:$STORAGED_PORT/v1/objects/compose-s3/check.txt")" = "written over s3" ]
echo "PASS  S3 face: PUT over S3, GET over S3 and native"

# Profile s3: storaged on an S3 store (here storaged's own S3 face) and two catalogd
# replicas over it. The smoke flow through replica a (restarted through compose), then a
# register through a read back through b: at once with no-cache, from its index within 1 s.
dc up -d
./target/release/smoke \
    --storaged-url "http://127.0.0.1:$S3_STORAGED_PORT" \
    --catalogd-url "http://127.0.0.1:$CATALOGD_A_PORT" \
    --restart-cmd "${compose[*]} -p $project --profile s3 restart catalogd-a" \
    --ready-timeout-secs 120
for _ in $(seq 1 60); do
    curl -fsS -o /dev/null "http://127.0.0.1:$CATALOGD_B_PORT/readyz" 2>/dev/null && break
    sleep 2
done
body='{"name":"compose.replicas","schema_fingerprint":"sha256:compose","objects":[{"key":"lake/compose/a.parquet","size":1}]}'
curl -fsS -X POST -H 'content-type: application/json' --data "$body" "http://127.0.0.1:$CATALOGD_A_PORT/v1/datasets" -o /dev/null
curl -fsS -H 'cache-control: no-cache' "http://127.0.0.1:$CATALOGD_B_PORT/v1/datasets/compose.replicas" -o /dev/null
sleep 2.5
curl -fsS "http://127.0.0.1:$CATALOGD_B_PORT/v1/datasets/compose.replicas" -o /dev/null
# The manifest is an object in the store's bucket.
dc exec -T objectstore curl -fsS -o /dev/null http://127.0.0.1:8101/v1/objects/lake/_catalog/manifests/compose.replicas.parquet
echo "PASS  profile s3: smoke through replica a on storaged-on-S3; a write through a read through b"

# Prometheus scrapes every 5 s; give it a few rounds after the restart.
echo "waiting for Prometheus to see both targets up"
for _ in $(seq 1 60); do
    if curl -fsS "http://127.0.0.1:$PROMETHEUS_PORT/api/v1/query?query=up" 2>/dev/null | python3 -c '
import json, sys
result = json.load(sys.stdin)["data"]["result"]
up = {r["metric"]["job"]: r["value"][1] for r in result}
print("  up:", up)
sys.exit(0 if up.get("storaged") == "1" and up.get("catalogd") == "1" else 1)
'; then
        echo "PASS  Prometheus: storaged and catalogd up == 1"
        exit 0
    fi
    sleep 2
done
echo "FAIL  Prometheus never saw both targets up" >&2
exit 1
