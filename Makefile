# The README's two commands are `make run` and `make test`; CI runs `make test`.
CARGO ?= cargo
PYTHON ?= python3
VENV := .venv
PYARROW_VERSION := 26.0.1
SCHEMATHESIS_VERSION := 4.32.5
DUCKDB_VERSION := 1.5.5
BOTO3_VERSION := 1.44.8
AWSCLI_VERSION := 1.46.3
POLARS_VERSION := 2.1.0
MOTO_VERSION := 5.2.5
VENV_STAMP := $(VENV)/.pyarrow-$(PYARROW_VERSION)-schemathesis-$(SCHEMATHESIS_VERSION)-duckdb-$(DUCKDB_VERSION)-boto3-$(BOTO3_VERSION)-awscli-$(AWSCLI_VERSION)-polars-$(POLARS_VERSION)-moto-$(MOTO_VERSION)
FUZZ_SECONDS ?= 600

.PHONY: all test unit fmt fmt-check lint build bench chaos venv fuzz run clean docker-base compose-up compose-down compose-test

all: build

## test: formatting, lints and every test, including the pyarrow interop test
test: fmt-check lint venv
	$(CARGO) test --workspace --all-targets --locked
	$(CARGO) test --workspace --doc --locked

## unit: the fast loop: every test that needs no root, no strace, no Python and no
## Prometheus (unit tests, in-process services, the real binaries through testkit).
## `make test` stays the full gate that CI runs.
UNIT_TESTS := --test api --test identity --test golden --test roundtrip --test decode_errors \
	--test smoke --test tls --test proxy --test hostile --test auth --test catalogd_process \
	--test storaged_process --test scopes --test log_sink --test concurrency
unit:
	$(CARGO) test --workspace --locked --lib --bins $(UNIT_TESTS) -- --skip a_failed_fsync

fmt:
	$(CARGO) fmt --all

fmt-check:
	$(CARGO) fmt --all -- --check

lint:
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

build:
	$(CARGO) build --workspace --release --locked

## bench: benchmarks (never part of `make test`): codec criterion benches, then the
## product beside the machine's ceilings (table on stdout, JSON in target/bench/results.json)
bench:
	$(CARGO) bench -p manifest-codec --bench codec --locked
	$(CARGO) build --workspace --release --locked
	./target/release/lake-bench $(BENCH_ARGS)

## chaos: the long tier of the fault suite (docs/reliability.md); never part of `make test`
chaos:
	scripts/chaos.sh

## venv: a project-local Python with pyarrow (the independent reader of the interop test),
## schemathesis (API fuzzing from the OpenAPI documents, in the fault suite) and DuckDB with
## its httpfs extension from PyPI (runs what `lake query` prints; no extension download);
## boto3, the aws CLI and polars (clients of storaged's S3 face); moto's S3 server (the
## store under storaged's S3 backend in the tests)
venv: $(VENV_STAMP)

$(VENV_STAMP):
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; the pyarrow interop test needs Python 3 with venv" >&2; exit 1; }
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check pyarrow==$(PYARROW_VERSION) schemathesis==$(SCHEMATHESIS_VERSION) \
		duckdb==$(DUCKDB_VERSION) duckdb-extension-httpfs==$(DUCKDB_VERSION) \
		boto3==$(BOTO3_VERSION) awscli==$(AWSCLI_VERSION) polars==$(POLARS_VERSION) \
		'moto[server]==$(MOTO_VERSION)'
	touch $@

## fuzz: coverage-guided fuzzing of manifest decoding (stable toolchain, cargo-fuzz)
fuzz:
	command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	mkdir -p crates/manifest-codec/fuzz/corpus/decode
	cp crates/manifest-codec/tests/golden/v1/no_objects.parquet crates/manifest-codec/tests/golden/v1/three_objects.parquet crates/manifest-codec/fuzz/corpus/decode/
	cd crates/manifest-codec && $(CARGO) fuzz run --sanitizer none -O decode fuzz/corpus/decode -- -max_total_time=$(FUZZ_SECONDS) -max_len=8192

## run: start storaged and catalogd on 127.0.0.1 (8101/8102) with data under ./data.
## The build is `make build`'s (the whole workspace: building two packages alone would
## unify features differently and rebuild what `make build` just built).
run: build
	scripts/run.sh

## docker-base: the offline base image lake/base:bookworm (debootstrap + docker import)
docker-base:
	docker/build-base.sh

COMPOSE ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)
OFFLINE_IMAGES := LAKE_DOCKERFILE=docker/Dockerfile.prebuilt LAKE_BASE_IMAGE=lake/base:bookworm

## compose-up: the compose stack from host-built binaries, with no image registry
compose-up: docker-base build
	$(OFFLINE_IMAGES) $(COMPOSE) up -d --build

compose-down:
	$(COMPOSE) down

## compose-test: images, stack up, smoke in URL mode with a restart, Prometheus targets up, teardown
compose-test:
	docker/compose-test.sh

clean:
	$(CARGO) clean
	rm -rf $(VENV)
