# The two commands of the README, plus helpers.
.PHONY: demo test services services-down lint bench

# Start Kafka and ClickHouse, then replay the bundled feed through every stage and print trends,
# negative mentions and dead letters.
demo: services
	cargo run --quiet -- demo

# Start Kafka and ClickHouse, then run unit and integration tests against them.
test: services
	cargo test

services:
	scripts/services.sh up

services-down:
	scripts/services.sh down

lint:
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
