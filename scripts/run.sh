#!/usr/bin/env bash
# Starts storaged (127.0.0.1:8101, its S3 face on 8103) and catalogd (127.0.0.1:8102) with
# data under ./data,
# logs interleaved with a service prefix. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p data
pids=()
stop() {
    # Ignore further signals (a second Ctrl-C, the terminal hanging up) until both are down.
    trap '' INT TERM HUP
    trap - EXIT
    # catalogd first (it writes its checkpoint to storaged as it stops), then storaged.
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        kill -TERM "${pids[i]}" 2>/dev/null || true
        while kill -0 "${pids[i]}" 2>/dev/null; do sleep 0.05; done
    done
    wait 2>/dev/null || true
}
trap stop INT TERM HUP EXIT

# Process substitution keeps $! the service's pid (not sed's), so the trap stops it.
./target/release/storaged --listen 127.0.0.1:8101 --s3-listen 127.0.0.1:8103 --data-dir ./data/storaged \
    > >(trap '' INT; sed -u 's/^/storaged | /') 2>&1 &
pids+=($!)
./target/release/catalogd --listen 127.0.0.1:8102 --storaged-url http://127.0.0.1:8101 \
    > >(trap '' INT; sed -u 's/^/catalogd | /') 2>&1 &
pids+=($!)

for _ in $(seq 1 100); do
    curl -fsS http://127.0.0.1:8102/readyz >/dev/null 2>&1 && break
    sleep 0.1
done
cat <<'MSG'

  storaged on http://127.0.0.1:8101 (S3 on http://127.0.0.1:8103), catalogd on
  http://127.0.0.1:8102. Try lake, the CLI:

  ./target/release/lake datasets ls                               # start here: the catalog
  ./target/release/lake cp -r ./my-parquet-dir s3://lake/orders/  # upload a directory tree
  ./target/release/lake register sales.orders s3://lake/orders/   # rows + fingerprint from the footers
  ./target/release/lake datasets show sales.orders
  ./target/release/lake query sales.orders                        # SQL for DuckDB, runs as printed

  Or over HTTP:

  curl -sS -X POST http://127.0.0.1:8102/v1/datasets -H 'content-type: application/json' \
    -d '{"name":"sales.orders","schema_fingerprint":"sha256:abc","objects":[{"key":"lake/orders/part-0.parquet","size":1024}],"row_count":10}'
  curl -sS http://127.0.0.1:8102/v1/datasets/sales.orders
  curl -sS http://127.0.0.1:8102/v1/datasets/sales.orders/versions
  curl -sS 'http://127.0.0.1:8102/v1/changes?wait=30'

  Any S3 client works against http://127.0.0.1:8103 (path style; with no credentials file
  any key pair is accepted). Paste into your shell for the aws CLI, boto3, pyarrow, DuckDB:

  export AWS_ENDPOINT_URL=http://127.0.0.1:8103 AWS_ACCESS_KEY_ID=lake AWS_SECRET_ACCESS_KEY=lake AWS_REGION=us-east-1
  aws s3 mb s3://lake && aws s3 cp ./my-file.parquet s3://lake/orders/   # the aws CLI
  aws s3 ls s3://lake/orders/

  Ctrl-C stops both.
MSG
wait
